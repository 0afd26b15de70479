//! `locksmith run -- restic …`: a job that meets a lock waits for a live holder, runs as
//! soon as it is gone, and clears only the locks of holders proven dead (`--recover`,
//! through the audited unlock), with real restic 0.14, 0.18 and 0.19.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;

use crate::common::*;

/// `locksmith run [extra] -- RESTIC args` for `t`, stdout and stderr piped; a recovery's
/// artefacts go to `t`'s directory.
fn run(t: &TestRepo, r: &Restic, extra: &[&str], args: &[&str]) -> Command {
    let mut c = t.locksmith();
    c.arg("run")
        .args(extra)
        .arg("--")
        .arg(&r.path)
        .args(args)
        .env("RESTIC_CACHE_DIR", t.dir.path().join("cache"))
        .env("UNLOCK_LOG_DIR", t.dir.path())
        .env("UNLOCK_HOOK_DIR", t.dir.path().join("hooks"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits (up to `secs`) for `child` to end: its exit code and stderr.
fn ended(mut child: Child, secs: u64) -> (Option<i32>, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("still running after {secs} s: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

/// A live `restic backup --stdin` holds a shared lock: `run -- restic prune` waits, says
/// who holds it, and runs (and succeeds) once the backup has ended, within one re-read.
#[test]
fn a_prune_waits_for_a_live_backup_then_runs() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
        let pid = backup.id();
        let prune = run(&t, r, &["--wait", "5m"], &["prune"]).spawn().unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let mut stdin = backup.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, b"the job's data").unwrap();
        drop(stdin);
        let out = backup.wait_with_output().unwrap();
        assert!(out.status.success(), "{r}: the backup: {}", text(&out));
        let backup_ended = Instant::now();
        let (code, err) = ended(prune, 90);
        assert_eq!(code, Some(0), "{r}: {err}");
        assert!(
            err.contains(&format!("PID {pid} (shared): alive")),
            "{r}: {err}"
        );
        assert!(err.contains("waited"), "{r}: {err}");
        assert!(err.contains("restic exited 0"), "{r}: {err}");
        let after = backup_ended.elapsed();
        assert!(
            after < Duration::from_secs(30),
            "{r}: prune ended {after:?} after the backup"
        );
        assert!(t.lock_names().is_empty(), "{r}: {:?}", t.lock_names());
    }
}

/// A `kill -9`ed backup's lock blocks prune. Without `--recover` the job waits and exits
/// 21 when the wait runs out, the lock kept; with it, the audited unlock removes it (its
/// artefacts written) and prune runs.
#[test]
fn a_killed_backups_lock_is_cleared_only_with_recover() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
        backup.kill().unwrap();
        backup.wait().unwrap();
        let dead = t.lock_names();
        let (code, err) = ended(
            run(&t, r, &["--wait", "3s"], &["prune"]).spawn().unwrap(),
            30,
        );
        assert_eq!(code, Some(21), "{r}: {err}");
        assert!(err.contains("--recover would remove it"), "{r}: {err}");
        assert_eq!(t.lock_names(), dead, "{r}: kept without --recover");

        let (code, err) = ended(run(&t, r, &["--recover"], &["prune"]).spawn().unwrap(), 90);
        assert_eq!(code, Some(0), "{r}: {err}");
        assert!(err.contains("removed 1 dead holder's lock"), "{r}: {err}");
        let summary = std::fs::read_to_string(t.dir.path().join("last-unlock.json")).unwrap();
        assert!(summary.contains("\"exit_code\": 0"), "{r}: {summary}");
        assert!(t.lock_names().is_empty(), "{r}: {:?}", t.lock_names());
    }
}

/// A holder nobody here can judge (another host, no agent) is waited for, never
/// recovered: not even when its lock is old enough for restic to remove by age.
#[test]
fn a_lock_nobody_can_judge_is_waited_for_never_recovered() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let id = t.seal(&lock_at(minutes_ago(50), "otherhost", 4242), Encoding::Json);
        let (code, err) = ended(
            run(&t, r, &["--recover", "--wait", "3s"], &["prune"])
                .spawn()
                .unwrap(),
            30,
        );
        assert_eq!(code, Some(21), "{r}: {err}");
        assert!(
            err.contains("otherhost PID 4242 (shared): cannot be judged from here"),
            "{r}: {err}"
        );
        assert_eq!(t.lock_names(), vec![id], "{r}: never removed");
        // restic itself would remove it: the harm --recover did not do.
        t.restic_ok(&["unlock"]);
        assert!(t.lock_names().is_empty(), "{r}: restic unlock removes it");
    }
}

/// SIGTERM while the job waits ends `run` at once (128 + 15); restic never ran.
#[test]
fn sigterm_while_waiting_ends_run_at_once() {
    crate::needs!("restic");
    let r = &restics()[0];
    let t = TestRepo::new(2).with(r);
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let child = run(&t, r, &["--wait", "5m"], &["prune"]).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let (code, err) = ended(child, 10);
    assert!(start.elapsed() < Duration::from_secs(2), "{err}");
    assert_eq!(code, Some(143), "{err}");
    drop(backup.stdin.take());
    backup.wait().unwrap();
}

/// The wait runs out: exit 21, one mail and one webhook naming the holder, the gauges in
/// `--textfile` (promtool accepts them). A run that then finds its way clear leaves its
/// gauges too, and sends nothing.
#[test]
fn a_wait_that_runs_out_mails_posts_and_leaves_its_gauges() {
    crate::needs!("restic", "python3:aiosmtpd", "promtool");
    let r = &restics()[0];
    let t = TestRepo::new(2).with(r);
    let sink = crate::services::SmtpSink::start();
    let recv = crate::services::TestServer::start(crate::services::Mode::Ok);
    let prom = t.dir.path().join("run.prom");
    let notify = |c: &mut Command| {
        c.env("SMTP_HOST", "127.0.0.1")
            .env("SMTP_PORT", sink.port.to_string())
            .env("MAILX_RCPT", "ops@example.com")
            .env("WEBHOOK_URL", recv.url("/hook?token=Tok-5521"));
    };
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let pid = backup.id();
    let textfile = prom.to_str().unwrap();
    let mut c = run(&t, r, &["--wait", "3s", "--textfile", textfile], &["prune"]);
    notify(&mut c);
    let (code, err) = ended(c.spawn().unwrap(), 30);
    assert_eq!(code, Some(21), "{err}");
    assert!(err.contains("mail to ops@example.com: sent"), "{err}");
    assert!(
        err.contains("webhook http://127.0.0.1/...: delivered"),
        "{err}"
    );
    assert!(!err.contains("Tok-5521"), "{err}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{err}");
    assert!(
        mails[0].subject.starts_with("[WAITED OUT] locksmith run"),
        "{}",
        mails[0].subject
    );
    assert!(
        mails[0]
            .body
            .contains(&format!("PID {pid} (shared): alive")),
        "{}",
        mails[0].body
    );
    let posted = recv.taken();
    assert_eq!(posted.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(
        (&body["job"], &body["exit_code"]),
        (&"run".into(), &21.into()),
        "{body:#}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the wait (3s) ran out"),
        "{body:#}"
    );
    let gauges = std::fs::read_to_string(&prom).unwrap();
    crate::serve::promtool_check_metrics(&gauges);
    assert!(gauges.contains("command=\"prune\"} 1\n"), "{gauges}");
    assert!(gauges.contains("locksmith_run_last_exit_code{"), "{gauges}");
    assert!(!gauges.contains(&t.password), "{gauges}");

    drop(backup.stdin.take());
    backup.wait().unwrap();
    let mut c = run(&t, r, &["--textfile", textfile], &["prune"]);
    notify(&mut c);
    let (code, err) = ended(c.spawn().unwrap(), 60);
    assert_eq!(code, Some(0), "{err}");
    let gauges = std::fs::read_to_string(&prom).unwrap();
    assert!(
        gauges.contains("locksmith_run_last_waited_out{")
            && gauges
                .lines()
                .any(|l| l.starts_with("locksmith_run_last_waited_out{") && l.ends_with(" 0")),
        "{gauges}"
    );
    assert_eq!(
        sink.mails().len(),
        1,
        "nothing removed, no wait ran out: no mail"
    );
    assert_eq!(recv.taken().len(), 1, "nor a webhook");
}

/// Another host's agent: `locksmith agent` under the host name `name`, in a UTS namespace
/// of its own but this kernel's PID namespace, as on a host of its own (an agent in a
/// container could not prove a holder dead: other containers are hidden from it).
fn agent_of_another_host(name: &str) -> Option<(crate::services::KillOnDrop, String)> {
    if !is_root() {
        skip("another host's agent in a UTS namespace needs root");
        return None;
    }
    let port = crate::services::free_port();
    let script = format!(
        "hostname {name} && exec {} agent --listen 127.0.0.1:{port}",
        env!("CARGO_BIN_EXE_locksmith")
    );
    let mut child = Command::new("unshare")
        .args(["--uts", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::services::wait_for_port(port, &mut child, "locksmith agent");
    Some((
        crate::services::KillOnDrop(child),
        format!("{name}=http://127.0.0.1:{port}"),
    ))
}

/// A dead holder on another host, proven by its agent: the run waits, naming the time
/// from which restic removes it (another host's lock under 30 minutes old), then
/// recovers it through the audited unlock (marked automatic) and runs prune. The run is
/// an unprivileged user's, which cannot enter the other host's namespace: only the
/// agent's answer proves the holder dead.
#[test]
fn a_dead_holder_on_another_host_is_recovered_once_restic_would_remove_it() {
    crate::needs!("restic", "unshare", "setpriv");
    let Some((_agent, peer)) = agent_of_another_host("nodeb") else {
        return;
    };
    let (uid, gid) = ensure_user("locksmith-it");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let almost = minutes_ago(30) + chrono::Duration::seconds(8);
        let dead = dead_pid();
        let id = t.seal(&lock_at(almost, "nodeb", dead), Encoding::Json);
        // The storage agrees on its age: written by a writer whose clock is right.
        let file = t.locks_dir().join(&id);
        let at = format!("@{}", almost.timestamp());
        assert!(
            Command::new("touch")
                .args(["-d", &at])
                .arg(&file)
                .status()
                .unwrap()
                .success()
        );
        // restic where the user can run it (the build's directory may be closed to it).
        let theirs = Restic {
            path: t.dir.path().join("restic"),
            ..r.clone()
        };
        std::fs::copy(&r.path, &theirs.path).unwrap();
        let open = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(t.dir.path())
            .status();
        assert!(open.unwrap().success());
        let start = Instant::now();
        let c = run(
            &t,
            &theirs,
            &["--recover", "--wait", "2m", "--peer", &peer],
            &["prune"],
        );
        let mut c = as_user(uid, gid, c);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let (code, err) = ended(c.spawn().unwrap(), 120);
        assert_eq!(code, Some(0), "{r}: {err}");
        assert!(
            err.contains(&format!(
                "nodeb PID {dead} (shared): dead, but restic keeps it yet, removable after "
            )),
            "{r}: {err}"
        );
        assert!(err.contains("removed 1 dead holder's lock"), "{r}: {err}");
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "{r}: recovered before restic would"
        );
        assert!(!t.lock_names().contains(&id), "{r}: {:?}", t.lock_names());
        let summary = std::fs::read_to_string(t.dir.path().join("last-unlock.json")).unwrap();
        assert!(summary.contains("\"automatic\": \"ON\""), "{r}: {summary}");
        assert!(summary.contains("before `"), "{r}: {summary}");
        assert!(
            summary.contains("\"judged_on\":\"nodeb\""),
            "{r}: {summary}"
        );
    }
}

/// A backup starts between the reading and prune (a wrapper starts it, then runs
/// restic): prune's lock failure leads back to waiting (restic 0.14: exit 1 and its
/// message), or restic's own `--retry-lock` that run adds (0.16 on) waits; never a
/// failed job.
#[test]
fn a_backup_that_starts_between_the_reading_and_prune_is_waited_for() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let dir = t.dir.path();
        let fifo = crate::serve::fifo_in(dir);
        let wrapper = dir.join("restic-racing");
        let script = format!(
            "#!/bin/sh\n[ \"$1\" = version ] && exec {restic} version\nif [ ! -e {mark} ]; then\n  touch {mark}\n  {restic} backup --stdin --stdin-filename f < {fifo} >/dev/null 2>&1 &\n  while [ -z \"$(ls {locks})\" ]; do sleep 0.05; done\nfi\nexec {restic} \"$@\"\n",
            restic = r.path.display(),
            mark = dir.join("started").display(),
            fifo = fifo.display(),
            locks = t.locks_dir().display(),
        );
        std::fs::write(&wrapper, script).unwrap();
        assert!(
            Command::new("chmod")
                .arg("755")
                .arg(&wrapper)
                .status()
                .unwrap()
                .success()
        );
        let racing = Restic {
            path: wrapper.clone(),
            ..r.clone()
        };
        let prune = run(&t, &racing, &["--wait", "2m"], &["prune"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(5));
        let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        std::io::Write::write_all(&mut feed, b"the racing job's data").unwrap();
        drop(feed);
        let (code, err) = ended(prune, 120);
        assert_eq!(code, Some(0), "{r}: {err}");
        if !r.at_least(16) {
            assert!(
                err.contains("restic met a lock taken since the reading: waiting again"),
                "{r}: {err}"
            );
        }
        let snapshots = t.restic_ok(&["snapshots", "--json"]);
        assert!(
            snapshots.contains("\"paths\""),
            "{r}: the racing backup ran: {snapshots}"
        );
    }
}

/// SIGTERM while restic runs is forwarded: restic ends as it would on its own SIGTERM
/// (its lock removed), and `run` exits with restic's own code.
#[test]
fn sigterm_while_restic_runs_is_forwarded_and_its_exit_code_returned() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        // restic alone, as the reference.
        let mut alone = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(alone.id() as i32, libc::SIGTERM) };
        let own = alone.wait().unwrap().code();
        // restic 0.14 leaves its lock on SIGTERM (it cleans up on SIGINT only).
        std::thread::sleep(Duration::from_millis(300));
        let left = t.lock_names().len();
        for l in t.lock_names() {
            std::fs::remove_file(t.locks_dir().join(l)).unwrap();
        }

        let mut c = run(&t, r, &[], &["backup", "--stdin", "--stdin-filename", "f"]);
        let child = c.stdin(Stdio::piped()).spawn().unwrap();
        t.wait_for_locks(0);
        // SAFETY: kill(2) on our own child's PID.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (code, err) = ended(child, 30);
        // restic killed by the signal: run exits 128 + 15, as a shell reports it.
        let own = own.unwrap_or(128 + libc::SIGTERM);
        assert_eq!(code, Some(own), "{r}: {err}");
        assert!(err.contains(&format!("restic exited {own}")), "{r}: {err}");
        assert_eq!(
            t.lock_names().len(),
            left,
            "{r}: restic ended as it does on SIGTERM"
        );
    }
}

/// On a terminal the wait draws a progress line (and clears it before each line); in a
/// log (no terminal) it does not.
#[test]
fn on_a_terminal_the_wait_draws_a_progress_line() {
    crate::needs!("restic", "script");
    let r = &restics()[0];
    let t = TestRepo::new(2).with(r);
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let like = run(&t, r, &[], &[]);
    let cmd = format!(
        "{} run --wait 4s -- {} prune",
        env!("CARGO_BIN_EXE_locksmith"),
        r.path.display()
    );
    let out = on_terminal(&cmd, &like).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(21), "{shown}");
    assert!(
        shown.contains("\r\x1b[Klocksmith run: waited "),
        "{shown:?}"
    );
    assert!(shown.contains("reading again in "), "{shown:?}");
    let (_, err) = ended(
        run(&t, r, &["--wait", "3s"], &["prune"]).spawn().unwrap(),
        30,
    );
    assert!(
        !err.contains("reading again in") && !err.contains('\r'),
        "{err:?}"
    );
    drop(backup.stdin.take());
    backup.wait().unwrap();
}
