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
