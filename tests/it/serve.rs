//! `locksmith serve` and `locks --config`/`--textfile`: real repositories on disk and behind
//! `rclone serve restic`, real restic adding and removing locks, promtool, chromium.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;
use regex::Regex;
use serde_json::Value;

use crate::common::*;
use crate::services::{Fault, RestServer, TestServer, free_port, wait_for_port};

/// A running `locksmith serve`, stopped by PID (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Serve {
    pub(crate) port: u16,
    pub(crate) child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let port = free_port();
        let mut cmd = locksmith_cmd();
        // Each serve its own history, unless the test names one.
        cmd.env("LOCKSMITH_STATE_DIR", dir.path().join("state"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().unwrap();
        wait_for_port(port, &mut child, "locksmith serve");
        Serve {
            port,
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub(crate) fn with_config(config: &Path) -> Serve {
        Serve::start(&["--config", config.to_str().unwrap()], &[])
    }

    /// GET `path`: the status, the body and how long the answer took.
    pub(crate) fn get(&self, path: &str) -> (u16, String, Duration) {
        locksmith::install_tls_provider();
        let started = Instant::now();
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().unwrap();
        (status, body, started.elapsed())
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let (status, body, took) = self.get("/metrics");
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(1), "/metrics took {took:?}");
        Metrics(body)
    }

    pub(crate) fn locks(&self) -> Value {
        serde_json::from_str(&self.get("/locks").1).unwrap()
    }

    pub(crate) fn repository(&self, name: &str) -> Value {
        let doc = self.locks();
        doc["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
            .clone()
    }

    /// Waits (up to `secs`) until `ok` holds of `/locks`.
    pub(crate) fn wait_for(&self, secs: u64, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let doc = self.locks();
            if ok(&doc) {
                return doc;
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "{what} within {secs} s: {doc:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every repository has a reading of its own, or an error for those in
    /// `failing`.
    pub(crate) fn wait_settled(&self, failing: &[&str]) -> Value {
        self.wait_for(60, "every repository settled", |doc| {
            doc["repositories"].as_array().unwrap().iter().all(|r| {
                if failing.contains(&r["name"].as_str().unwrap()) {
                    !r["error"].is_null()
                } else {
                    // A reading of its own: not one restored from the history.
                    !r["refreshed_at"].is_null() && r["error"].is_null() && r["restored"].is_null()
                }
            })
        })
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: kill(2) on our own child's PID.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// SIGTERM, and how long the process took to exit, and with what.
    pub(crate) fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        self.signal(libc::SIGTERM);
        let started = Instant::now();
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("serve did not stop within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_millis(200));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Prometheus exposition, read by series.
pub(crate) struct Metrics(pub(crate) String);

impl Metrics {
    /// The value of `name` for `repository`, where the other labels contain `extra`.
    pub(crate) fn value(&self, name: &str, repository: &str, extra: &str) -> Option<f64> {
        let head = format!("{name}{{repository=\"{repository}\"");
        self.0
            .lines()
            .find(|l| l.starts_with(&head) && l.contains(extra))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    }

    /// A per-process series (no labels).
    pub(crate) fn process(&self, name: &str) -> f64 {
        let head = format!("{name} ");
        let line = self.0.lines().find_map(|l| l.strip_prefix(&head));
        line.unwrap_or_else(|| panic!("no {name} in\n{}", self.0))
            .trim()
            .parse()
            .unwrap()
    }

    pub(crate) fn get(&self, name: &str, repository: &str) -> f64 {
        self.value(name, repository, "")
            .unwrap_or_else(|| panic!("no {name} for {repository} in\n{}", self.0))
    }

    /// The `id` labels of the per-lock series of `repository`.
    pub(crate) fn lock_ids(&self, repository: &str) -> Vec<String> {
        let head = format!("locksmith_lock_info{{repository=\"{repository}\",id=\"");
        let mut ids: Vec<String> = self
            .0
            .lines()
            .filter_map(|l| l.strip_prefix(&head))
            .map(|rest| rest[..64].to_string())
            .collect();
        ids.sort();
        ids
    }
}

/// serve watching `t` alone, refreshed every second.
pub(crate) fn serve_one(t: &TestRepo, extra: &[&str]) -> Serve {
    let repo = t.path.display().to_string();
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let mut args = vec!["-r", &repo, "-p", pw.to_str().unwrap(), "--interval", "1"];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Serve::start(&args, &[])
}

/// One `[[repository]]` table.
struct Member<'a> {
    name: &'a str,
    repository: String,
    password_file: PathBuf,
    extra: &'a str,
}

fn write_fleet(path: &Path, interval: u64, members: &[Member]) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "interval = {interval}").unwrap();
    for m in members {
        writeln!(
            f,
            "\n[[repository]]\nname = {:?}\nrepository = {:?}\npassword_file = {:?}\n{}",
            m.name, m.repository, m.password_file, m.extra
        )
        .unwrap();
    }
}

/// A FIFO named `fifo` in `dir`, that nobody writes: a password file that never ends.
pub(crate) fn fifo_in(dir: &Path) -> PathBuf {
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fifo
}

pub(crate) fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{password}\n")).unwrap();
    p
}

fn local(t: &TestRepo, name: &'static str, pw: &Path) -> Member<'static> {
    Member {
        name,
        repository: t.path.to_str().unwrap().to_string(),
        password_file: pw.to_path_buf(),
        extra: "",
    }
}

fn ids(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub(crate) fn promtool_check_metrics(text: &str) {
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}\n{text}",
        crate::common::text(&out)
    );
}

/// Every reading `serve` gives of a repository equals `locks --json`'s; a refresh with
/// nothing new reads nothing and derives no key; a lock real restic adds appears and goes.
#[test]
fn serve_matches_locks_json_and_reads_each_lock_file_once() {
    crate::needs!("restic", "rclone", "promtool");
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(2), "otherhost", 79), Encoding::Zstd);
    t.write_lock_file(
        &"ab".repeat(32),
        b"not a lock file at all, but 64 hex named",
    );
    let remote = TestRepo::new(1);
    remote.seal(&lock_at(minutes_ago(40), "elsewhere", 5), Encoding::Json);
    let rest = RestServer::start(remote.dir.path(), None, None);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(
        &fleet,
        1,
        &[
            local(&t, "disk", &pw),
            Member {
                name: "rest",
                repository: rest.url("", "repo/"),
                password_file: pw.clone(),
                extra: "",
            },
        ],
    );
    let serve = Serve::with_config(&fleet);
    let doc = serve.wait_settled(&[]);

    // The same verdicts as the one-shot command.
    let disk = serve.repository("disk");
    let one_shot = t.locks_json();
    assert_eq!(disk["counts"], one_shot["counts"], "{doc:#}");
    assert_eq!(ids(&disk), ids(&one_shot));
    let rest_shot: Value = {
        let out = locksmith_cmd()
            .args(["-r", &rest.url("", "repo/"), "locks", "--json"])
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(serve.repository("rest")["counts"], rest_shot["counts"]);

    // The metrics say the same, and promtool accepts them.
    let m = serve.metrics();
    promtool_check_metrics(&m.0);
    for (name, report) in [("disk", &one_shot), ("rest", &rest_shot)] {
        let c = &report["counts"];
        assert_eq!(
            m.get("restic_locks_total", name),
            c["total"].as_f64().unwrap()
        );
        assert_eq!(
            m.get("restic_stale_locks_total", name),
            c["restic_unlock_removes"].as_f64().unwrap()
        );
        assert_eq!(
            m.get("locksmith_locks_unreadable", name),
            c["unreadable"].as_f64().unwrap()
        );
        assert_eq!(
            m.get("locksmith_locks_stale", name),
            c["stale"].as_f64().unwrap()
        );
        assert_eq!(m.lock_ids(name), ids(report));
        assert_eq!(m.get("locksmith_refresh_success", name), 1.0);
        assert_eq!(m.get("locksmith_key_derivations_total", name), 1.0);
    }
    assert_eq!(m.get("locksmith_lock_files_read_total", "disk"), 3.0);
    assert_eq!(m.get("locksmith_lock_files_read_total", "rest"), 1.0);
    assert!(m.get("locksmith_oldest_lock_age_seconds", "disk") >= 50.0 * 60.0 - 5.0);

    // Refreshes with nothing new: no key derived, nothing read.
    let first = m.get("locksmith_refresh_timestamp_seconds", "disk");
    let started = Instant::now();
    while serve
        .metrics()
        .get("locksmith_refresh_timestamp_seconds", "disk")
        < first + 2.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_key_derivations_total", "disk"), 1.0);
    assert_eq!(m.get("locksmith_lock_files_read_total", "disk"), 3.0);
    assert_eq!(m.get("locksmith_lock_files_read_total", "rest"), 1.0);

    // A lock taken by real restic appears (one more read), and goes when restic ends.
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let pid = backup.id();
    backup.stdin.as_mut().unwrap().write_all(b"data").unwrap();
    serve.wait_for(20, "restic's lock appears", |_| {
        let d = serve.repository("disk");
        d["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["pid"] == pid && l["holder"] == "alive")
    });
    assert_eq!(
        serve
            .metrics()
            .get("locksmith_lock_files_read_total", "disk"),
        4.0
    );
    drop(backup.stdin.take());
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serve.wait_for(20, "restic's lock goes", |_| {
        let d = serve.repository("disk");
        !d["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["pid"] == pid)
    });
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_key_derivations_total", "disk"), 1.0);
    assert_eq!(m.get("restic_locks_total", "disk"), 2.0);
}

/// A wrong password, a server that stops and a server that never answers each stay with
/// their repository: the others keep refreshing, `/metrics` answers at once, the last
/// good reading stays, and no secret shows anywhere.
#[test]
fn serve_failures_stay_local_and_leak_nothing() {
    crate::needs!("rclone");
    let good = TestRepo::new(2);
    good.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    let remote = TestRepo::new(2);
    remote.seal(&lock_at(minutes_ago(40), "elsewhere", 5), Encoding::Zstd);
    let url_pw = "Url-Pw-9f8e7d";
    let rest = RestServer::start(remote.dir.path(), Some(("u", url_pw)), None);
    let stops = TestServer::proxy(rest.port);
    let stalls = TestServer::proxy(rest.port);
    stalls.set_fault(Fault::Stall);
    let dir = good.dir.path();
    let pw = password_file(dir, "pw", PASSWORD);
    let wrong_pw = "Wrong-Pw-1a2b3c";
    let wrong = password_file(dir, "wrong", wrong_pw);
    let aws_secret = "Aws-Secret-77aa";
    let through = |s: &TestServer| format!("rest:http://u:{url_pw}@127.0.0.1:{}/repo/", s.port);
    let fleet = dir.join("fleet.toml");
    write_fleet(
        &fleet,
        1,
        &[
            local(&good, "good", &pw),
            local(&good, "wrong-password", &wrong),
            Member {
                name: "stops",
                repository: through(&stops),
                password_file: pw.clone(),
                extra: "",
            },
            Member {
                name: "stalls",
                repository: through(&stalls),
                password_file: pw.clone(),
                extra: "timeout = 1\n",
            },
            Member {
                name: "with-env",
                repository: good.path.to_str().unwrap().into(),
                password_file: pw.clone(),
                extra: &format!("env = {{ AWS_SECRET_ACCESS_KEY = {aws_secret:?} }}\n"),
            },
        ],
    );
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&["wrong-password", "stalls"]);
    assert!(
        serve.repository("wrong-password")["error"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
    );

    // The server behind "stops" goes away: its last reading stays, with the failure.
    stops.set_fault(Fault::Gone);
    serve.wait_for(30, "stops fails", |_| {
        !serve.repository("stops")["error"].is_null()
    });
    let stopped = serve.repository("stops");
    assert_eq!(stopped["counts"]["total"], 1, "{stopped:#}");
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_refresh_success", "stops"), 0.0);
    assert_eq!(m.get("restic_locks_total", "stops"), 1.0);
    assert_eq!(m.get("locksmith_refresh_success", "stalls"), 0.0);
    assert_eq!(m.get("locksmith_refresh_success", "wrong-password"), 0.0);
    assert!(
        m.value("restic_locks_total", "wrong-password", "")
            .is_none()
    );

    // The good repository kept refreshing throughout, and scrapes stay quick.
    let before = m.get("locksmith_refresh_timestamp_seconds", "good");
    let started = Instant::now();
    loop {
        let m = serve.metrics();
        if m.get("locksmith_refresh_timestamp_seconds", "good") >= before + 2.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    for path in ["/metrics", "/locks", "/", "/healthz"] {
        let (status, body, took) = serve.get(path);
        assert_eq!(status, 200, "{path}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        for secret in [PASSWORD, wrong_pw, url_pw, aws_secret] {
            assert!(!body.contains(secret), "{path} shows a secret:\n{body}");
        }
    }
    let log = serve.log();
    for secret in [PASSWORD, wrong_pw, url_pw, aws_secret] {
        assert!(!log.contains(secret), "the log shows a secret:\n{log}");
    }
    assert!(log.contains("stops: refresh failed"), "{log}");
}

/// SIGHUP re-reads the file: unchanged repositories keep their key and readings, new ones
/// start, a bad file is refused and the old one kept; SIGTERM ends it within a second.
#[test]
fn serve_reloads_on_sighup_and_stops_on_sigterm() {
    let a = TestRepo::new(2);
    a.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    let b = TestRepo::new(1);
    let dir = a.dir.path();
    let pw = password_file(dir, "pw", PASSWORD);
    let fleet = dir.join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&a, "a", &pw)]);
    let mut serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);

    write_fleet(&fleet, 1, &[local(&a, "a", &pw), local(&b, "b", &pw)]);
    serve.signal(libc::SIGHUP);
    serve.wait_for(20, "b appears", |doc| {
        doc["repositories"].as_array().unwrap().len() == 2
    });
    serve.wait_settled(&[]);
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_key_derivations_total", "a"), 1.0);
    assert_eq!(m.get("locksmith_lock_files_read_total", "a"), 1.0);
    assert_eq!(m.get("locksmith_key_derivations_total", "b"), 1.0);

    std::fs::write(&fleet, "[[repository]]\nname = \"a\"\nbogus = 1\n").unwrap();
    serve.signal(libc::SIGHUP);
    let started = Instant::now();
    while !serve.log().contains("reload failed") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(serve.log().contains("fleet.toml:3"), "{}", serve.log());
    assert_eq!(serve.locks()["repositories"].as_array().unwrap().len(), 2);

    let (status, took) = serve.stop();
    assert!(status.success(), "{status:?}\n{}", serve.log());
    assert!(took < Duration::from_secs(1), "stopped after {took:?}");
}

/// A fleet file with a mistake is a configuration error naming file and line, before
/// anything listens; so is a `locks --config` run.
#[test]
fn bad_fleet_file_is_exit_2_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        "interval = 5\n[[repository]]\nname = \"x\"\nrepository = \"/r\"\n",
    )
    .unwrap();
    let port = free_port();
    for args in [
        vec!["serve", "--listen", &format!("127.0.0.1:{port}")],
        vec!["locks"],
    ] {
        let out = run_within(locksmith_cmd().args(&args).arg("--config").arg(&fleet), 30);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("fleet.toml:2"), "{err}");
        assert!(err.contains("password_file or password_command"), "{err}");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// `locks --config`: every repository at once, one JSON document, the worst exit code;
/// `--textfile` writes serve's metrics for the run.
#[test]
fn locks_config_reports_a_fleet_and_writes_a_textfile() {
    crate::needs!("promtool");
    let a = TestRepo::new(2);
    a.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    let b = TestRepo::new(1);
    let dir = a.dir.path();
    let pw = password_file(dir, "pw", PASSWORD);
    let wrong = password_file(dir, "wrong", "not-it");
    let fleet = dir.join("fleet.toml");
    write_fleet(&fleet, 60, &[local(&a, "a", &pw), local(&b, "b", &pw)]);
    let prom = dir.join("out").join("restic_locks.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let run = |extra: &[&str]| {
        run_within(
            locksmith_cmd()
                .args(["locks", "--config"])
                .arg(&fleet)
                .args(extra),
            60,
        )
    };
    let out = run(&["--json", "--textfile", prom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let repos = doc["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["name"], "a");
    assert_eq!(repos[0]["counts"]["total"], 1);
    assert_eq!(repos[1]["counts"]["total"], 0);
    let textfile = std::fs::read_to_string(&prom).unwrap();
    promtool_check_metrics(&textfile);
    let m = Metrics(textfile);
    assert_eq!(m.get("restic_locks_total", "a"), 1.0);
    assert_eq!(m.get("restic_locks_total", "b"), 0.0);
    assert_eq!(m.get("locksmith_locks_stale", "a"), 1.0);

    // The table: one per repository, each under its name.
    let out = run(&["--fail-on", "stale"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("== a ==") && table.contains("== b =="),
        "{table}"
    );
    assert_eq!(run(&["--fail-on", "unreadable"]).status.code(), Some(0));

    // A repository that does not open outranks a condition elsewhere.
    write_fleet(&fleet, 60, &[local(&a, "a", &pw), local(&b, "b", &wrong)]);
    let out = run(&["--fail-on", "stale", "--json"]);
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["repositories"][1]["error"]
            .as_str()
            .unwrap()
            .contains("wrong password")
    );
    assert_eq!(doc["repositories"][0]["counts"]["stale"], 1);
}

/// The alerting rules shipped in deploy/ pass their own unit tests.
#[test]
fn alert_rules_pass_promtool_test_rules() {
    crate::needs!("promtool");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let out = Command::new("promtool")
        .args(["test", "rules", "locksmith.rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new("promtool")
        .args(["check", "rules", "locksmith.rules.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The status page, rendered by a real browser: failures first, locks in the table's
/// words and colours, nothing fetched from elsewhere.
#[test]
fn status_page_renders_in_headless_chromium() {
    crate::needs!("chromium");
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(1), "otherhost", 79), Encoding::Zstd);
    let dir = t.dir.path();
    let pw = password_file(dir, "pw", PASSWORD);
    let wrong = password_file(dir, "wrong", "not-it");
    let fleet = dir.join("fleet.toml");
    write_fleet(
        &fleet,
        5,
        &[local(&t, "nas <main>", &pw), local(&t, "offsite", &wrong)],
    );
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&["offsite"]);
    let (_, html, _) = serve.get("/");
    // Self-contained: no scripts or external assets; links only to serve's own endpoints.
    assert!(!html.contains("src="), "{html}");
    assert_eq!(
        html.matches("href=").count(),
        html.matches("href=\"/").count(),
        "{html}"
    );

    let profile = tempfile::tempdir().unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let chromium = |extra: &[&str]| {
        let mut c = Command::new("chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("http://127.0.0.1:{}/", serve.port));
        run_within(&mut c, 60)
    };
    let out = chromium(&["--dump-dom"]);
    assert!(out.status.success(), "{}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("nas &lt;main&gt;"), "{dom}");
    let offsite = dom.find("offsite").unwrap();
    assert!(
        offsite < dom.find("nas &lt;main&gt;").unwrap(),
        "failures first"
    );
    assert!(dom.contains("Cannot refresh: "), "{dom}");
    assert!(dom.contains("wrong password"), "{dom}");
    assert!(dom.contains("<tr class=\"removable\">"), "{dom}");
    assert!(dom.contains("1 failing"), "{dom}");
    assert!(!dom.contains("not-it") && !dom.contains(PASSWORD));
    let out = chromium(&[&format!("--screenshot={}", shot.display())]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

/// The kept key is dropped only when the repository no longer opens with it: a repository
/// initialised anew at the same place (its new lock files fail the old key's MAC, and so
/// does its `config`) is opened again, once.
#[test]
fn serve_derives_the_key_again_when_the_repository_is_replaced() {
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    let other = TestRepo::new(1);
    let replacement = other.seal(&lock_at(minutes_ago(5), "newhost", 9), Encoding::Json);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let serve = Serve::with_config(&fleet);
    let before = serve.wait_settled(&[]);
    let old_id = before["repositories"][0]["repository_id"].clone();

    std::fs::remove_dir_all(&t.path).unwrap();
    copy_dir(&other.path, &t.path);
    serve.wait_for(20, "the new repository's lock", |_| {
        let a = serve.repository("a");
        a["locks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == replacement.as_str())
    });
    let a = serve.repository("a");
    assert_ne!(a["repository_id"], old_id);
    assert_eq!(a["counts"]["total"], 1);
    assert_eq!(a["counts"]["unreadable"], 0);
    assert_eq!(
        serve.metrics().get("locksmith_key_derivations_total", "a"),
        2.0
    );
}

/// serve keeps keys for its whole life: another process of its user must not read its
/// memory, nor may a crash dump it. A dumpable process's /proc files belong to its user;
/// a non-dumpable one's to root.
#[test]
fn serve_is_not_dumpable() {
    if !is_root() {
        skip("needs root to run serve as another user");
        return;
    }
    let (uid, gid) = ensure_user("locksmith-it");
    let port = free_port();
    let mut cmd = locksmith_cmd();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["-r", "/nonexistent/repository"])
        .env("RESTIC_PASSWORD", "not-needed");
    let mut child = as_user(uid, gid, cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "locksmith serve");
    let proc_dir = format!("/proc/{}", child.id());
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    let runs_as = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(format!("{proc_dir}/environ")).unwrap(),
    );
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(runs_as.contains(&uid.to_string()), "{runs_as}");
    assert_eq!(
        owner, 0,
        "/proc/PID/environ of a dumpable process belongs to {uid}"
    );
}

/// A repository whose directory vanished, or was replaced by an empty one (an unmounted
/// share), read as healthy: success 1, no locks, every alert resolved. Now the refresh
/// fails, the last good reading is kept and marked, and the one-shot agrees (exit 10).
#[test]
fn a_vanished_repository_fails_its_refresh() {
    let t = TestRepo::new(2);
    let id = t.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);
    assert_eq!(serve.metrics().get("locksmith_refresh_success", "a"), 1.0);

    let aside = t.dir.path().join("aside");
    std::fs::rename(&t.path, &aside).unwrap();
    std::fs::create_dir_all(t.path.join("locks")).unwrap();
    serve.wait_settled(&["a"]);
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_refresh_success", "a"), 0.0, "{}", m.0);
    assert_eq!(
        m.get("restic_locks_total", "a"),
        1.0,
        "the last good reading is kept"
    );
    let a = serve.repository("a");
    assert!(
        a["error"].as_str().unwrap().contains("no repository here"),
        "{a:#}"
    );
    assert_eq!(ids(&a), vec![id.clone()]);
    let (_, page, _) = serve.get("/");
    assert!(page.contains("showing the last good reading"), "{page}");
    assert_eq!(
        t.locksmith().arg("locks").output().unwrap().status.code(),
        Some(10)
    );

    std::fs::remove_dir_all(&t.path).unwrap();
    std::fs::rename(&aside, &t.path).unwrap();
    serve.wait_settled(&[]);
    assert_eq!(serve.metrics().get("locksmith_refresh_success", "a"), 1.0);
}

/// The rclone children of `serve`, by PID.
fn rclone_children(serve: &Serve) -> Vec<u32> {
    let parent = serve.child.as_ref().unwrap().id().to_string();
    let out = Command::new("pgrep")
        .args(["-P", &parent, "rclone"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// An `rclone:` repository's server listened without authentication on a port named in
/// its world-readable command line: any local user could list keys/, plant files and
/// delete locks. It now asks for credentials drawn at random and passed in its
/// environment; it is started again after it dies (no zombie), and a fleet member's `env`
/// reaches it.
#[test]
fn rclone_port_is_closed_to_other_users_and_restarted() {
    crate::needs!("restic", "rclone");
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(3), "otherhost", 5), Encoding::Zstd);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    let member = Member {
        name: "viaenv",
        repository: format!("rclone:viaenv:{}", t.path.display()),
        password_file: pw,
        extra: "env = { RCLONE_CONFIG_VIAENV_TYPE = \"local\" }",
    };
    write_fleet(&fleet, 1, &[member]);
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);
    let first = rclone_children(&serve);
    assert_eq!(first.len(), 1, "{first:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", first[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        !cmdline.contains("--user") && !cmdline.contains("--pass"),
        "{cmdline}"
    );
    let port = Regex::new(r"127\.0\.0\.1:(\d+)")
        .unwrap()
        .captures(&cmdline)
        .unwrap()[1]
        .to_string();
    let anyone = reqwest::blocking::get(format!("http://127.0.0.1:{port}/keys/")).unwrap();
    assert_eq!(anyone.status().as_u16(), 401, "listed without credentials");

    Command::new("kill")
        .args(["-9", &first[0].to_string()])
        .status()
        .unwrap();
    serve.wait_for(30, "rclone started again", |_| {
        let now = rclone_children(&serve);
        now.len() == 1 && now != first
    });
    serve.wait_settled(&[]);
    assert_eq!(
        serve.metrics().get("locksmith_refresh_success", "viaenv"),
        1.0
    );
    assert!(
        !Path::new(&format!("/proc/{}", first[0])).exists(),
        "the dead rclone was reaped"
    );
}

/// rclone's stderr was discarded ("exited (exit status: 1)"): its own words are in the
/// error now.
#[test]
fn rclone_failure_says_what_rclone_said() {
    crate::needs!("restic", "rclone");
    let t = TestRepo::new(2);
    let out = t
        .locksmith()
        .env("RESTIC_REPOSITORY", "rclone:no-such-remote:x")
        .arg("locks")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no-such-remote") && e.contains("exited"), "{e}");
    assert!(e.contains("config"), "rclone's own words: {e}");
}

/// A password command that hangs, or a password file that is a FIFO, was run or read
/// inside the refresh task: /healthz and /metrics stopped, SIGTERM froze. Each now fails
/// its repository only (a FIFO is refused: serve reads passwords again), and the others
/// and the endpoints go on.
#[test]
fn a_hanging_password_source_fails_its_repository_only() {
    let t = TestRepo::new(2);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fifo = fifo_in(t.dir.path());
    let fleet = t.dir.path().join("fleet.toml");
    let repo = t.path.to_str().unwrap();
    std::fs::write(
        &fleet,
        format!(
            "interval = 1\n\
             [[repository]]\nname = \"good\"\nrepository = {repo:?}\npassword_file = {pw:?}\n\
             [[repository]]\nname = \"hangs\"\nrepository = {repo:?}\npassword_command = \"sleep 600\"\n\
             [[repository]]\nname = \"fifo\"\nrepository = {repo:?}\npassword_file = {fifo:?}\n"
        ),
    )
    .unwrap();
    let mut serve = Serve::with_config(&fleet);
    let doc = serve.wait_for(30, "good read, fifo refused", |doc| {
        let r = |n: &str| {
            doc["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == n)
                .cloned()
                .unwrap()
        };
        r("good")["error"].is_null()
            && !r("good")["refreshed_at"].is_null()
            && !r("fifo")["error"].is_null()
    });
    assert!(doc.to_string().contains("not a regular file"), "{doc:#}");
    for path in ["/healthz", "/metrics"] {
        let (status, _, took) = serve.get(path);
        assert_eq!(status, 200, "{path}");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
    }
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_refresh_success", "good"), 1.0);
    assert_eq!(m.get("locksmith_refresh_success", "hangs"), 0.0);
    let (status, took) = serve.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
}

/// serve's cache kept a decoded lock by name and size: a byte flipped in place (restic:
/// "invalid data returned") still showed a healthy lock, so ResticUnreadableLock never
/// fired. The listing's modification time now tells (and a full reading every 5 minutes
/// where a backend lists none).
#[test]
fn a_lock_damaged_in_place_is_read_again() {
    let t = TestRepo::new(2);
    let id = t.seal(&lock_at(minutes_ago(3), "otherhost", 78), Encoding::Zstd);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);
    let path = t.locks_dir().join(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    serve.wait_for(20, "the damaged lock unreadable", |_| {
        serve.repository("a")["counts"]["unreadable"] == 1
    });
    let a = serve.repository("a");
    assert_eq!(a["counts"]["total"], 0, "{a:#}");
    assert_eq!(serve.metrics().get("locksmith_locks_unreadable", "a"), 1.0);
}

/// `--deadline` was ignored with `--config`: every member got 120 s. It now bounds each
/// member, and a member's own `deadline` wins.
#[test]
fn deadline_bounds_every_fleet_member() {
    crate::needs!("restic", "rclone");
    let t = TestRepo::new(2);
    let srv = RestServer::start(t.dir.path(), None, None);
    let stalls = TestServer::proxy(srv.port);
    stalls.set_fault(Fault::Stall);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    let member = |name, deadline: &'static str| Member {
        name,
        repository: format!("rest:http://127.0.0.1:{}/repo/", stalls.port),
        password_file: pw.clone(),
        extra: deadline,
    };
    for (args, extra, limit) in [
        (&["--deadline", "3"][..], "", 3),
        (&[][..], "deadline = 2", 2),
    ] {
        write_fleet(&fleet, 60, &[member("stalled", extra)]);
        let started = Instant::now();
        let out = locksmith_cmd()
            .args(args)
            .args(["locks", "--config", fleet.to_str().unwrap()])
            .output()
            .unwrap();
        let took = started.elapsed();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{e}");
        assert!(e.contains(&format!("the {limit} s deadline")), "{e}");
        assert!(took < Duration::from_secs(60), "took {took:?}");
    }
}

/// In `locks --config`, a member's password file that was a FIFO froze the whole fleet
/// run. A fleet file's password files must be regular files; the other members are read.
#[test]
fn a_fifo_password_file_fails_its_fleet_member_only() {
    let t = TestRepo::new(2);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fifo = fifo_in(t.dir.path());
    let fleet = t.dir.path().join("fleet.toml");
    let good = local(&t, "good", &pw);
    let stuck = Member {
        name: "fifo",
        password_file: fifo,
        ..local(&t, "fifo", &pw)
    };
    write_fleet(&fleet, 60, &[good, stuck]);
    let started = Instant::now();
    let out = locksmith_cmd()
        .args(["locks", "--json", "--config", fleet.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let repos = doc["repositories"].as_array().unwrap();
    assert!(
        repos[0]["error"].is_null() && !repos[0]["refreshed_at"].is_null(),
        "{doc:#}"
    );
    assert!(
        repos[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{doc:#}"
    );
}

/// A repository replaced by one with another password kept reporting success under the
/// old ID until a lock appeared. With no lock to fail its MAC, `config` tells: the new
/// repository does not open with the password, and the refresh says so.
#[test]
fn a_repository_replaced_under_another_password_fails_its_refresh() {
    let t = TestRepo::new(2);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);
    let other = TestRepo::fixture("repo-v2");
    std::fs::remove_dir_all(&t.path).unwrap();
    copy_dir(&other.path, &t.path);
    std::fs::remove_dir_all(t.locks_dir()).unwrap();
    std::fs::create_dir_all(t.locks_dir()).unwrap();
    let doc = serve.wait_settled(&["a"]);
    let a = &doc["repositories"][0];
    assert!(
        a["error"].as_str().unwrap().contains("wrong password"),
        "{a:#}"
    );
    assert_eq!(serve.metrics().get("locksmith_refresh_success", "a"), 0.0);
}

/// A password fixed during a long backoff: serve looked again only when the backoff ran
/// out (30 s after 4 failures at a 2 s interval). A changed password file is now tried at
/// the next interval.
#[test]
fn a_fixed_password_file_is_read_within_one_interval_of_the_fix() {
    let t = TestRepo::new(2);
    let pw = password_file(t.dir.path(), "pw", "not the password");
    let fleet = t.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let serve = Serve::with_config(&fleet);
    // Backing off: the next attempt at least 8 intervals away.
    let doc = serve.wait_for(60, "a backoff of 8 s or more", |d| {
        d["repositories"][0]["retry_at"].as_str().is_some_and(|at| {
            chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|at| {
                at.with_timezone(&chrono::Utc) - chrono::Utc::now() > chrono::Duration::seconds(8)
            })
        })
    });
    let retry_at = doc["repositories"][0]["retry_at"]
        .as_str()
        .unwrap()
        .to_string();
    let fixed = std::time::Instant::now();
    password_file(t.dir.path(), "pw", PASSWORD);
    serve.wait_for(6, "the repository read with the fixed password", |d| {
        d["repositories"][0]["error"].is_null() && !d["repositories"][0]["refreshed_at"].is_null()
    });
    let took = fixed.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "read {took:?} after the fix; the backoff had it wait until {retry_at}"
    );
}

/// A SIGHUP that changed only the fleet file's `[[peer]]` tables changed nothing: each
/// repository kept its old peers (URL and credentials) until a restart. Peers are now one
/// set, replaced on reload and asked from the next refresh.
#[test]
fn a_reload_that_changes_only_the_peers_asks_the_new_ones() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let Some(nodeb) = crate::peers::OtherHost::spawn(Some("nodeb"), None) else {
        return;
    };
    let web = t.dir.path().join("web.yml");
    let hash = bcrypt::hash("right-pw", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  ops: {hash}\n")).unwrap();
    let mut nodeb = nodeb;
    nodeb.agent(&[], &["--web-config", web.to_str().unwrap()]);
    t.seal(&lock_at(minutes_ago(1), "nodeb", 4242), Encoding::Json);
    let pw = password_file(t.dir.path(), "pw", PASSWORD);
    let wrong = password_file(t.dir.path(), "peer-wrong", "wrong-pw");
    let right = password_file(t.dir.path(), "peer-right", "right-pw");
    let fleet = t.dir.path().join("fleet.toml");
    let peer = |url: &str, pw: &Path| {
        format!(
            "\n[[peer]]\nhostname = \"nodeb\"\nurl = {url:?}\nusername = \"ops\"\npassword_file = {pw:?}\n"
        )
    };
    let dead = format!("http://127.0.0.1:{}", crate::services::free_port());
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let base = std::fs::read_to_string(&fleet).unwrap();
    std::fs::write(&fleet, format!("{base}{}", peer(&dead, &wrong))).unwrap();
    let serve = Serve::with_config(&fleet);
    let lock_of = || serve.repository("a")["locks"][0].clone();
    serve.wait_for(30, "the dead peer named", |_| {
        lock_of()["peer_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect"))
    });
    std::fs::write(&fleet, format!("{base}{}", peer(&nodeb.url(), &right))).unwrap();
    serve.signal(libc::SIGHUP);
    serve.wait_for(10, "nodeb's agent asked at its new URL", |_| {
        lock_of()["judged_on"] == "nodeb"
    });
    let l = lock_of();
    assert_eq!(l["holder"], "gone", "{l:#}");
    assert!(!serve.log().contains("right-pw"));
}

/// Every repository asked every agent at each of its refreshes: ten repositories with
/// locks of one host sent that host's agent ten questions per interval. Now the first
/// repository of a round asks about the others' locks too, and they read its answer.
#[test]
fn each_agent_is_asked_once_per_round_not_once_per_repository() {
    crate::needs!("restic");
    let (a, b) = (TestRepo::new(2), TestRepo::new(2));
    let Some(mut nodeb) = crate::peers::OtherHost::spawn(Some("nodeb"), None) else {
        return;
    };
    nodeb.agent(&[], &[]);
    let port: u16 = nodeb.url().rsplit(':').next().unwrap().parse().unwrap();
    let counting = crate::services::TestServer::proxy(port);
    a.seal(&lock_at(minutes_ago(1), "nodeb", 4242), Encoding::Json);
    b.seal(&lock_at(minutes_ago(1), "nodeb", 4343), Encoding::Json);
    let pw = password_file(a.dir.path(), "pw", PASSWORD);
    let fleet = a.dir.path().join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&a, "a", &pw), local(&b, "b", &pw)]);
    let base = std::fs::read_to_string(&fleet).unwrap();
    let peer = format!(
        "\n[[peer]]\nhostname = \"nodeb\"\nurl = {:?}\n",
        counting.url("")
    );
    std::fs::write(&fleet, format!("{base}{peer}")).unwrap();
    let serve = Serve::with_config(&fleet);
    serve.wait_for(30, "both repositories judged on nodeb", |_| {
        ["a", "b"]
            .iter()
            .all(|r| serve.repository(r)["locks"][0]["judged_on"] == "nodeb")
    });
    let asked = || {
        counting
            .taken()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/host"))
            .collect::<Vec<_>>()
    };
    let before = asked().len();
    // The readings of 8 s: each repository's distinct `refreshed_at`, polled.
    let mut seen = std::collections::BTreeSet::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        for r in ["a", "b"] {
            seen.insert((r, serve.repository(r)["refreshed_at"].to_string()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let questions = asked()[before..].to_vec();
    let readings = seen.len() - 2;
    assert!(
        readings >= 10,
        "{readings} readings in 8 s at a 1 s interval"
    );
    // Two repositories, one round a second: about one question a second, never one per
    // reading (a round boundary may fall between the two and cost one more).
    assert!(
        questions.len() * 3 <= readings * 2,
        "{} questions for {readings} readings",
        questions.len()
    );
    let last = &questions.last().expect("asked in 8 s").path;
    assert!(
        last.contains("4242") && last.contains("4343"),
        "one question about both repositories' locks: {last}"
    );
    assert_eq!(serve.repository("b")["locks"][0]["holder"], "gone");
}

/// `--web-config`, `--peers`, a peer's `password_file` and `--config` were read unbounded
/// and blocking: a FIFO hung serve or `locks`, `/dev/zero` passed 800 MiB, and a FIFO
/// picked up at SIGHUP made serve ignore SIGTERM. Each is now refused at once, exit 2
/// naming it; at SIGHUP the old file is kept and SIGTERM still ends serve.
#[test]
fn a_fifo_or_a_device_as_any_configuration_file_is_refused_at_once() {
    let t = TestRepo::new(2);
    let dir = t.dir.path();
    let fifo = fifo_in(dir);
    let fifo_s = fifo.to_str().unwrap();
    let pw = password_file(dir, "pw", PASSWORD);
    let peer_pw_fifo = dir.join("peers.toml");
    std::fs::write(
        &peer_pw_fifo,
        format!("[[peer]]\nhostname = \"b\"\nurl = \"http://127.0.0.1:1\"\nusername = \"u\"\npassword_file = {fifo_s:?}\n"),
    )
    .unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["serve", "--listen", &listen, "--web-config", fifo_s],
            "not a regular file",
        ),
        (
            vec!["serve", "--listen", &listen, "--web-config", "/dev/zero"],
            "not a regular file",
        ),
        (
            vec!["serve", "--listen", &listen, "--config", fifo_s],
            "not a regular file",
        ),
        (vec!["locks", "--peers", fifo_s], "not a regular file"),
        (vec!["locks", "--peers", "/dev/zero"], "not a regular file"),
        (
            vec!["locks", "--peers", peer_pw_fifo.to_str().unwrap()],
            "not a regular file",
        ),
    ];
    for (args, says) in runs {
        let started = Instant::now();
        let mut c = t.locksmith();
        c.args(&args)
            .env("RESTIC_PASSWORD_FILE", &pw)
            .env_remove("RESTIC_PASSWORD");
        let out = run_within(&mut c, 10);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // A fleet file whose new [[peer]] names a FIFO password file, read at SIGHUP.
    let fleet = dir.join("fleet.toml");
    write_fleet(&fleet, 1, &[local(&t, "a", &pw)]);
    let mut serve = Serve::with_config(&fleet);
    serve.wait_settled(&[]);
    let base = std::fs::read_to_string(&fleet).unwrap();
    std::fs::write(
        &fleet,
        format!("{base}\n[[peer]]\nhostname = \"b\"\nurl = \"http://127.0.0.1:1\"\nusername = \"u\"\npassword_file = {fifo_s:?}\n"),
    )
    .unwrap();
    serve.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        serve.log().contains("not a regular file"),
        "{}",
        serve.log()
    );
    let (status, took) = serve.stop();
    assert!(
        status.success() && took < Duration::from_secs(3),
        "{status:?} after {took:?}"
    );
}
