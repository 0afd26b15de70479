//! Two hosts on one machine. A UTS + PID namespace with a host name of its own runs
//! `locksmith agent` and real restic; locksmith outside judges that host's locks through
//! the agent, and real `restic unlock`, outside and inside, shows what each host's restic
//! removes.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::services::{free_port, wait_for_port};

/// Another host: a namespace whose init only sleeps (and reaps), entered with nsenter.
pub(crate) struct OtherHost {
    pub(crate) name: String,
    pub(crate) port: u16,
    unshare: Child,
    init: u32,
    jobs: Vec<Child>,
    dir: tempfile::TempDir,
}

impl OtherHost {
    /// `None` (said, and a failure under scripts/test) without root, unshare or nsenter.
    pub(crate) fn start(
        name: &str,
        agent_env: &[(&str, &str)],
        agent_args: &[&str],
    ) -> Option<OtherHost> {
        let mut host = OtherHost::spawn(Some(name), None)?;
        host.agent(agent_env, agent_args);
        Some(host)
    }

    /// A UTS + PID namespace: with a host name of its own (`None`: this host's, as a
    /// container that keeps it), inside `parent` (a Pod on a node) or on this host.
    pub(crate) fn spawn(name: Option<&str>, parent: Option<&OtherHost>) -> Option<OtherHost> {
        if !is_root() {
            skip("another host as a UTS + PID namespace needs root");
            return None;
        }
        if !have(&["unshare", "nsenter"]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let set_name = name.map_or(String::new(), |n| format!("hostname {n} && "));
        let script = format!(
            "{set_name}touch {} && while :; do sleep 3600; done",
            ready.display()
        );
        let uts = if name.is_some() { "--uts " } else { "" };
        let unshare_args = format!("{uts}--pid --fork --mount-proc --kill-child");
        let mut cmd = match parent {
            Some(p) => p.enter(&format!("exec unshare {unshare_args} sh -c '{script}'")),
            None => {
                let mut c = Command::new("unshare");
                c.args(unshare_args.split(' ')).args(["sh", "-c", &script]);
                c
            }
        };
        let unshare = cmd.process_group(0).stdin(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        while !ready.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the namespace did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let init = init_below(unshare.id());
        Some(OtherHost {
            name: name.map_or_else(this_host, str::to_string),
            port: 0,
            unshare,
            init,
            jobs: Vec::new(),
            dir,
        })
    }

    /// `locksmith agent` there, listening on a port of its own.
    pub(crate) fn agent(&mut self, env: &[(&str, &str)], args: &[&str]) {
        self.port = free_port();
        let agent = format!(
            "exec {} agent --listen 127.0.0.1:{} {} 2>{}",
            env!("CARGO_BIN_EXE_locksmith"),
            self.port,
            args.join(" "),
            self.dir.path().join("agent.log").display()
        );
        let mut child = self
            .enter(&agent)
            .envs(env.iter().copied())
            .spawn()
            .unwrap();
        wait_for_port(self.port, &mut child, "locksmith agent");
        self.jobs.push(child);
    }

    /// `sh -c script` on that host.
    pub(crate) fn enter(&self, script: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.init.to_string(),
            "-u",
            "-p",
            "-m",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null());
        c
    }

    /// `script` run to its end there, with `t`'s restic environment and `$RESTIC`.
    pub(crate) fn run(&self, t: &TestRepo, script: &str) -> Output {
        let mut c = self.enter(script);
        with_restic_env(&mut c, t);
        c.output().unwrap()
    }

    /// A process started there in the background (`script` must end by running it with
    /// `&`); its PID on that host.
    pub(crate) fn background(&mut self, t: &TestRepo, script: &str) -> i64 {
        let pid_file = self.dir.path().join(format!("job{}.pid", self.jobs.len()));
        let mut c = self.enter(&format!(
            "{script} echo $! > {0}.tmp && mv {0}.tmp {0}; wait",
            pid_file.display()
        ));
        with_restic_env(&mut c, t);
        self.jobs.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        while !pid_file.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{script}: no PID"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// A real `restic backup` there, holding its lock until killed; its PID there.
    pub(crate) fn backup(&mut self, t: &TestRepo) -> i64 {
        let before = t.lock_names().len();
        let pid = self.background(
            t,
            "sleep 600 | \"$RESTIC\" backup --stdin --stdin-filename f >/dev/null 2>&1 &",
        );
        t.wait_for_locks(before);
        pid
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn peer(&self) -> String {
        format!("{}={}", self.name, self.url())
    }
}

/// The first process below `pid` (down the first children) that is PID 1 of its namespace.
fn init_below(pid: u32) -> u32 {
    let started = Instant::now();
    let mut at = pid;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{at}/status")).unwrap_or_default();
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last().map(str::to_string));
        if at != pid && inner.as_deref() == Some("1") {
            return at;
        }
        let children = std::fs::read_to_string(format!("/proc/{at}/task/{at}/children"));
        match children.unwrap_or_default().split_whitespace().next() {
            Some(c) => at = c.parse().unwrap(),
            None => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no namespace init below {pid}"
                );
                std::thread::sleep(Duration::from_millis(20));
                at = pid;
            }
        }
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        // The namespace's init, and every process of the namespace (and of namespaces
        // nested in it) with it.
        let _ = Command::new("kill")
            .args(["-9", &self.init.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        for j in &mut self.jobs {
            let _ = j.kill();
            let _ = j.wait();
        }
    }
}

fn with_restic_env(c: &mut Command, t: &TestRepo) {
    for (k, v) in t.restic().get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("RESTIC", t.restic_path());
}

/// `locksmith locks --json` with `args`, checked for success and for the password.
pub(crate) fn locks_with(t: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = t
        .locksmith()
        .args(["locks", "--json", "--timeout", "3"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_no_secret(&out, &t.password);
    assert!(out.status.success(), "locksmith: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn only_lock(report: &Value) -> Value {
    let locks = report["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{report:#}");
    locks[0].clone()
}

fn restic_unlock_here(t: &TestRepo) {
    t.restic_ok(&["unlock"]);
}

fn restic_unlock_there(host: &OtherHost, t: &TestRepo) {
    let out = host.run(t, "\"$RESTIC\" unlock");
    assert!(
        out.status.success(),
        "restic unlock on {}: {}",
        host.name,
        text(&out)
    );
}

/// A real backup on nodeb: alive there (and unknown without its agent); after `kill -9`
/// gone there, kept by restic here (another host's young lock) and removed by restic there.
#[test]
fn a_backup_on_another_host_is_alive_there_and_gone_after_kill_9() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let Some(mut host) = OtherHost::start("nodeb", &[], &[]) else {
            return;
        };
        let pid = host.backup(&t);
        // Without its agent, nodeb (a namespace of this very kernel) is judged here.
        let alone = only_lock(&locks_with(&t, &[], &[]));
        assert_eq!(alone["holder"], "alive", "{r}: {alone}");
        assert_eq!(alone["judged_on"], this_host());
        assert_eq!(alone["namespace"], "container \"nodeb\" of this host");
        assert_eq!(
            alone["pid"], pid,
            "{r}: restic writes its PID on its own host"
        );

        let report = locks_with(&t, &["--peer", &host.peer()], &[]);
        let l = only_lock(&report);
        assert_eq!(
            (&l["holder"], &l["judged_on"], &l["stale"], &l["unsafe"]),
            (
                &"alive".into(),
                &"nodeb".into(),
                &false.into(),
                &false.into()
            ),
            "{r}: {l:#}"
        );
        let peer = &report["peers"][0];
        assert_eq!(
            (&peer["hostname"], &peer["ok"]),
            (&"nodeb".into(), &true.into()),
            "{peer}"
        );
        assert!(
            peer["clock_offset_seconds"].as_f64().unwrap().abs() < 5.0,
            "{peer}"
        );
        assert_eq!(report["holders"][0]["judged_on"], "nodeb");
        restic_unlock_here(&t);
        restic_unlock_there(&host, &t);
        assert_eq!(
            t.lock_names().len(),
            1,
            "{r}: neither restic removes a live job's lock"
        );

        let out = host.run(&t, &format!("kill -9 {pid}"));
        assert!(out.status.success(), "{}", text(&out));
        std::thread::sleep(Duration::from_millis(300));
        let l = only_lock(&locks_with(&t, &["--peer", &host.peer()], &[]));
        assert_eq!(
            (&l["holder"], &l["stale"]),
            (&"gone".into(), &true.into()),
            "{r}: {l:#}"
        );
        assert_eq!(
            l["restic_unlock_removes"], false,
            "{r}: restic's rule here is unchanged"
        );
        assert!(!l["safe_after"].is_null(), "{l}");
        let why = l["reason"].as_str().unwrap();
        assert!(
            why.contains("restic unlock on \"nodeb\" removes it now: its PID is gone there"),
            "{why}"
        );
        restic_unlock_here(&t);
        assert_eq!(
            t.lock_names().len(),
            1,
            "{r}: restic here keeps another host's young lock"
        );
        restic_unlock_there(&host, &t);
        assert_eq!(t.lock_names().len(), 0, "{r}: restic on nodeb removes it");
    }
}

/// A lock whose PID now belongs to a later process there (sealed: restic cannot make one on
/// demand): reused, stale; restic there keeps it and sends that process a SIGHUP.
#[test]
fn a_reused_pid_there_is_stale_and_restic_there_would_sighup_it() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let Some(mut host) = OtherHost::start("nodeb", &[], &[]) else {
            return;
        };
        let bystander = host.background(&t, "sleep 600 &");
        let id = t.seal(&lock_at(minutes_ago(5), "nodeb", bystander), Encoding::Json);
        let l = only_lock(&locks_with(&t, &["--peer", &host.peer()], &[]));
        assert_eq!(
            (&l["holder"], &l["stale"], &l["unsafe"]),
            (&"reused".into(), &true.into(), &false.into()),
            "{l:#}"
        );
        // An agent without authentication never tells command lines.
        assert_eq!(
            l["holder_command"],
            locksmith::peer::answer::ANOTHER_PROGRAM
        );
        let why = l["reason"].as_str().unwrap();
        assert!(
            why.contains(&format!(
                "to PID {bystander}, a live process that is not the holder"
            )),
            "{why}"
        );
        restic_unlock_there(&host, &t);
        assert_eq!(t.lock_names(), vec![id], "{r} on nodeb keeps it");
        // Reaped by its shell a moment after the signal.
        let script = format!(
            "for i in $(seq 50); do kill -0 {bystander} 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
        );
        let out = host.run(&t, &script);
        assert!(out.status.success(), "{r}'s SIGHUP ended the bystander");
    }
}

/// This host's clock 45 minutes ahead (libfaketime): restic here would remove a live job's
/// fresh lock by age. Its host says the job lives: unsafe, and both unlocks refuse.
#[test]
fn a_live_jobs_lock_that_restic_here_would_remove_is_unsafe_and_unlock_refuses() {
    crate::needs!("restic", "faketime");
    let t = TestRepo::new(2);
    let Some(mut host) = OtherHost::start("nodeb", &[], &[]) else {
        return;
    };
    host.backup(&t);
    let lib = crate::history::faketime_lib();
    let ahead = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "+45m")];
    let report = locks_with(&t, &["--peer", &host.peer()], &ahead);
    let l = only_lock(&report);
    assert_eq!(
        (
            &l["holder"],
            &l["restic_unlock_removes"],
            &l["unsafe"],
            &l["stale"]
        ),
        (&"alive".into(), &true.into(), &true.into(), &false.into()),
        "{l:#}"
    );
    let why = l["reason"].as_str().unwrap();
    assert!(
        why.contains("clock is 45m") && why.contains("behind this host's"),
        "{why}"
    );
    let offset = report["peers"][0]["clock_offset_seconds"].as_f64().unwrap();
    assert!((offset + 2700.0).abs() < 30.0, "{offset}");

    let logs = t.dir.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    let unlock = |args: &[&str], env: &[(&str, &str)]| {
        let out = t
            .locksmith()
            .args([
                "unlock",
                "--timeout",
                "3",
                "--hook-dir",
                "/nonexistent",
                "--peer",
                &host.peer(),
            ])
            .arg("--log-dir")
            .arg(&logs)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_no_secret(&out, &t.password);
        out
    };
    let out = unlock(&[], &ahead);
    assert_eq!(out.status.code(), Some(20), "stale-only: {}", text(&out));
    let out = unlock(&["--remove-all"], &[]);
    assert_eq!(out.status.code(), Some(20), "--remove-all: {}", text(&out));
    assert_eq!(t.lock_names().len(), 1, "the live job keeps its lock");
    let run_log = std::fs::read_to_string(logs.join("unlock-last.log")).unwrap();
    assert!(run_log.contains("peers before: nodeb ok"), "{run_log}");
    assert!(
        run_log.contains("holder alive (judged on nodeb)"),
        "{run_log}"
    );
    let summary = std::fs::read_to_string(logs.join("last-unlock.json")).unwrap();
    assert!(summary.contains("\"judged_on\":\"nodeb\""), "{summary}");
}

/// Peers that are down, silent (accept, never answer), refuse the credentials or answer for
/// another host: their locks stay unknown with the reason, the run succeeds in bounded
/// time, and no credential is shown.
#[test]
fn peers_down_silent_or_refusing_leave_their_locks_unknown_in_time() {
    let t = TestRepo::new(2);
    for h in ["down", "silent", "refusing", "impostor"] {
        t.seal(&lock_at(minutes_ago(1), h, 4242), Encoding::Json);
    }
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    silent.set_nonblocking(true).unwrap();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            if let Ok(c) = silent.accept() {
                conns.push(c);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  ops: {}\n",
            bcrypt::hash("right-pw", 4).unwrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut agent = crate::services::KillOnDrop(
        locksmith_cmd()
            .args([
                "agent",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--web-config",
            ])
            .arg(&web)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, &mut agent.0, "locksmith agent");
    let peers = [
        format!("down=http://127.0.0.1:{}", free_port()),
        format!("silent=http://127.0.0.1:{silent_port}"),
        format!("refusing=http://ops:wrong-pw-1@127.0.0.1:{port}"),
        format!("impostor=http://ops:right-pw@127.0.0.1:{port}"),
    ];
    let started = Instant::now();
    let report = locks_with(&t, &[], &[("LOCKSMITH_PEERS", &peers.join(","))]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "bounded by --timeout 3: {took:?}"
    );
    let text = report.to_string();
    for secret in ["wrong-pw-1", "right-pw"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let by_host = |h: &str| {
        report["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["hostname"] == h)
            .unwrap()
            .clone()
    };
    for (h, why) in [
        ("down", "cannot connect"),
        ("silent", "no answer within 3 s"),
        ("refusing", "refused the credentials (401"),
        (
            "impostor",
            &format!("answers for host {:?}, not \"impostor\"", this_host()),
        ),
    ] {
        let l = by_host(h);
        assert_eq!(
            (&l["holder"], &l["judged_on"]),
            (&"unknown".into(), &Value::Null),
            "{l:#}"
        );
        let e = l["peer_error"].as_str().unwrap_or_default();
        assert!(e.contains(why), "{h}: {e:?} lacks {why:?}");
        let p = report["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["hostname"] == h)
            .unwrap();
        assert_eq!(p["ok"], false, "{p}");
    }
    held.join().unwrap();
}

/// The agent behind TLS with a required client certificate and basic auth, named in a
/// peers file: the lock is judged there, and the password is never shown.
#[test]
fn a_peer_behind_tls_client_certificates_and_basic_auth_answers() {
    crate::needs!("restic");
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = write_tls(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\nbasic_auth_users:\n  ops: {}\n",
            cert.display(), key.display(), ca.display(), bcrypt::hash("tls-secret-pw", 4).unwrap()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("pw"), "tls-secret-pw\n").unwrap();
    let t = TestRepo::new(2);
    let web_arg = format!("--web-config {}", web.display());
    let Some(mut host) = OtherHost::start("nodeb", &[], &[&web_arg]) else {
        return;
    };
    host.backup(&t);
    let peers = dir.path().join("peers.toml");
    let table = |with_cert: bool| {
        let certs = if with_cert {
            "cert_file = \"client.pem\"\nkey_file = \"client.key\"\n"
        } else {
            ""
        };
        format!(
            "[[peer]]\nhostname = \"nodeb\"\nurl = \"https://127.0.0.1:{}\"\nca_file = \"ca.pem\"\n{certs}username = \"ops\"\npassword_file = \"pw\"\n",
            host.port
        )
    };
    std::fs::write(&peers, table(true)).unwrap();
    let report = locks_with(
        &t,
        &[],
        &[("LOCKSMITH_PEERS_FILE", peers.to_str().unwrap())],
    );
    let l = only_lock(&report);
    assert_eq!(
        (&l["holder"], &l["judged_on"]),
        (&"alive".into(), &"nodeb".into()),
        "{report:#}"
    );
    assert!(
        report["peers"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    std::fs::write(&peers, table(false)).unwrap();
    let report = locks_with(&t, &["--peers", peers.to_str().unwrap()], &[]);
    let l = only_lock(&report);
    assert_eq!(l["holder"], "unknown", "no client certificate: {l:#}");
    assert!(!report.to_string().contains("tls-secret-pw"));
}

/// The agent's clock 40 minutes behind (libfaketime): the offset is measured and said.
#[test]
fn a_peer_whose_clock_is_behind_is_measured_and_said() {
    crate::needs!("restic", "faketime");
    let t = TestRepo::new(2);
    let lib = crate::history::faketime_lib();
    let behind = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", "-40m")];
    let Some(mut host) = OtherHost::start("nodeb", &behind, &[]) else {
        return;
    };
    host.backup(&t);
    let report = locks_with(&t, &["--peer", &host.peer()], &[]);
    let offset = report["peers"][0]["clock_offset_seconds"].as_f64().unwrap();
    assert!((offset + 2400.0).abs() < 30.0, "{offset}");
    let l = only_lock(&report);
    assert_eq!(l["holder"], "alive", "{l:#}");
    let why = l["reason"].as_str().unwrap();
    assert!(
        why.contains("\"nodeb\"'s clock is 40m") && why.contains("behind"),
        "{why}"
    );
}

/// serve asks the peers at each refresh and shows who judged; it answers for its own host
/// on the agent's path too.
#[test]
fn serve_judges_on_the_holders_host_and_answers_for_its_own() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let Some(mut host) = OtherHost::start("nodeb", &[], &[]) else {
        return;
    };
    host.backup(&t);
    let s = crate::serve::Serve::start(
        &["--interval", "1", "--timeout", "3", "--peer", &host.peer()],
        &[
            ("RESTIC_REPOSITORY", t.path.to_str().unwrap()),
            ("RESTIC_PASSWORD", &t.password),
        ],
    );
    let doc = s.wait_for(30, "judged on nodeb", |d| {
        d["repositories"][0]["locks"][0]["judged_on"] == "nodeb"
    });
    let lock = &doc["repositories"][0]["locks"][0];
    assert_eq!(lock["holder"], "alive", "{lock}");
    let (_, page, _) = s.get("/");
    assert!(
        page.contains("alive (asked nodeb)") && page.contains("Asked: nodeb ok"),
        "{page}"
    );
    let (_, metrics, _) = s.get("/metrics");
    assert!(
        metrics.contains("hostname=\"nodeb\"} 1\n") && metrics.contains("locksmith_peer_up{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("locksmith_peer_clock_offset_seconds{"),
        "{metrics}"
    );
    let me = std::process::id();
    let (status, body, _) = s.get(&format!("/api/v1/host?pid={me}"));
    assert_eq!(status, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(a["hostname"], this_host());
    assert_eq!(a["processes"][0]["state"], "signalable", "{a}");
}

/// A peer that cannot be used as written stops the run before anything is read (exit 2),
/// naming it, password masked.
#[test]
fn peers_that_cannot_be_used_are_configuration_errors() {
    let t = TestRepo::new(2);
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("peers.toml");
    std::fs::write(&bad_file, "[[peer]]\nhostname = \"b\"\n").unwrap();
    for (args, says) in [
        (vec!["--peer", "nodeb"], "expected HOST=URL"),
        (
            vec!["--peer", "nodeb:https://ops:pw-in-flag@b"],
            "expected HOST=URL",
        ),
        (vec!["--peer", "nodeb=ftp://b"], "http:// or https://"),
        (
            vec!["--peers", "/nonexistent/peers.toml"],
            "peers file /nonexistent/peers.toml",
        ),
        (
            vec!["--peers", bad_file.to_str().unwrap()],
            "missing field `url`",
        ),
    ] {
        for cmd in ["locks", "unlock"] {
            let out = t.locksmith().arg(cmd).args(&args).output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{args:?}: {err}");
            assert!(!err.contains("pw-in-flag"), "{err}");
        }
    }
}

/// A peer answering 302 sent locksmith's request, with its client certificate and basic
/// auth, to any URL it named (SSRF). Peers are never followed: the redirect is the answer.
#[test]
fn a_peer_s_redirect_is_not_followed() {
    use crate::services::{Mode, TestServer, route};
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(1), "redirector", 4242), Encoding::Json);
    let elsewhere = TestServer::start(Mode::Ok);
    let target = elsewhere.url("/api/v1/host");
    let peer = TestServer::canned(vec![route("GET", "/", 302, &[("Location", &target)], "")]);
    let url = peer.url("").replace("http://", "http://ops:peer-pw@");
    let report = locks_with(&t, &["--peer", &format!("redirector={url}")], &[]);
    let l = only_lock(&report);
    assert_eq!(l["holder"], "unknown", "{l:#}");
    let why = l["peer_error"].as_str().unwrap();
    assert!(why.contains("302") && why.contains("redirect"), "{why}");
    assert!(elsewhere.taken().is_empty(), "the redirect was followed");
    assert_eq!(peer.taken().len(), 1);
}

/// The agent named every process to anyone who could reach it: the command and start time
/// of any PID, 4,096 per request. Without authentication it now tells only what a verdict
/// needs: whether a PID exists and runs restic, a restic's start, and of anything else only
/// whether it started after the oldest lock asked about. An authenticated asker is told
/// all; serve's endpoint can be turned off.
#[test]
fn an_agent_tells_anyone_only_what_a_verdict_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = bystander.id();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("agent-pw", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  serve: {hash}\n")).unwrap();
    let start = |args: &[&str]| {
        let port = free_port();
        let mut c = Command::new(env!("CARGO_BIN_EXE_locksmith"));
        c.args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        crate::services::wait_for_port(port, &mut child, "locksmith agent");
        (port, crate::services::KillOnDrop(child))
    };
    let ask = |port: u16, since: i64, auth: bool| -> serde_json::Value {
        locksmith::install_tls_provider();
        let url = format!("http://127.0.0.1:{port}/api/v1/host?pid={pid}&since={since}");
        let mut req = reqwest::blocking::Client::new().get(url);
        if auth {
            req = req.basic_auth("serve", Some("agent-pw"));
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 200);
        let doc: serde_json::Value = r.json().unwrap();
        doc["processes"][0].clone()
    };
    let now = chrono::Utc::now().timestamp();
    let (open, _a) = start(&[]);
    let p = ask(open, now - 3600, false);
    assert_eq!(p["state"], "signalable");
    assert_eq!(p["command"], locksmith::peer::answer::ANOTHER_PROGRAM);
    let bound = p["started"]
        .as_str()
        .expect("started after the lock: a bound");
    let bound = chrono::DateTime::parse_from_rfc3339(bound)
        .unwrap()
        .timestamp();
    assert!(
        (now - 3600..now - 3590).contains(&bound),
        "a bound just past since, not its start"
    );
    let p = ask(open, now + 3600, false);
    assert_eq!(
        p["started"],
        serde_json::Value::Null,
        "started before: nothing told"
    );
    let (closed, _b) = start(&["--web-config", web.to_str().unwrap()]);
    let p = ask(closed, now + 3600, true);
    assert_eq!(p["command"], "sleep");
    assert!(p["started"].is_string());
    let _ = bystander.kill();
    let _ = bystander.wait();
    // serve --no-agent does not answer for its host.
    let t = TestRepo::new(2);
    let serve = crate::serve::serve_one(&t, &["--no-agent"]);
    assert_eq!(serve.get(&format!("/api/v1/host?pid={pid}")).0, 404);
    assert_eq!(
        crate::serve::serve_one(&t, &[]).get("/api/v1/host?pid=1").0,
        200
    );
}
