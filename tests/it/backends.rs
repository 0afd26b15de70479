//! The same repository through every backend locksmith reads: the same locks, verdicts and
//! counts as on the local copy.

use std::time::{Duration, Instant};

use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::services::*;

/// A repository with locks of every verdict.
fn busy_repo() -> TestRepo {
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(3), "otherhost", 5), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(50), "otherhost", 6), Encoding::Zstd);
    t.seal(
        &lock_at(minutes_ago(2), &this_host(), dead_pid()),
        Encoding::Json,
    );
    for i in 0..40 {
        t.seal(
            &lock_at(minutes_ago(i % 20), &format!("fleet-{i}"), i),
            Encoding::Zstd,
        );
    }
    let (foreign, bytes) = locksmith::seal::seal_foreign(b"{}");
    t.write_lock_file(&foreign, &bytes);
    t
}

/// What the storage's own clock decides: a copy made by upload (S3, Azure, GCS) stamps
/// every object with the upload's time, REST lists no time at all, a local file keeps its
/// own; so these follow the storage, not the reading.
const STORAGE_CLOCK: [&str; 7] = [
    "storage_age_seconds",
    "clocks_disagree",
    "stale",
    "unsafe",
    "safe_after",
    "abandoned",
    "worst",
];

/// The parts of a report that do not depend on where or exactly when it was made, nor on
/// the storage's clock.
fn essence(r: &Value) -> Value {
    let mut r = r.clone();
    let o = r.as_object_mut().unwrap();
    for k in ["repository", "checked_at", "storage_clock"] {
        o.remove(k);
    }
    for k in ["stale", "unsafe"] {
        o.get_mut("counts")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(k);
    }
    for list in ["locks", "holders"] {
        for x in o.get_mut(list).unwrap().as_array_mut().unwrap() {
            let x = x.as_object_mut().unwrap();
            for k in ["age_seconds", "reason", "last_seen", "first_seen"]
                .into_iter()
                .chain(STORAGE_CLOCK)
            {
                x.remove(k);
            }
        }
    }
    r
}

fn report_via(t: &TestRepo, repo: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = t.locksmith();
    c.env("RESTIC_REPOSITORY", repo).args(["locks", "--json"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn same_as_local(t: &TestRepo, repo: &str, env: &[(&str, &str)]) -> Value {
    let local = t.locks_json();
    let out = report_via(t, repo, env);
    assert_no_secret(&out, PASSWORD);
    assert!(out.status.success(), "{}", text(&out));
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(essence(&remote), essence(&local));
    assert_eq!(remote["counts"]["total"], 43);
    assert_eq!(remote["counts"]["unreadable"], 1);
    remote
}

/// What each restic release on the machine lists in `locks/` at `repo` (with `env` and
/// `args`): locksmith reads a backend as every supported restic does. Sorted IDs. A
/// release built without the backend (Debian's 0.18 and 0.19 have no Azure) is passed
/// over, saying so; at least one release must read it.
fn each_restic_lists(t: &TestRepo, repo: &str, env: &[(&str, &str)], args: &[&str]) -> Vec<String> {
    let mut first: Option<Vec<String>> = None;
    for r in restics() {
        let mut c = t.restic_by(&r.path);
        c.env("RESTIC_REPOSITORY", repo)
            .envs(env.iter().copied())
            .args(args)
            .args(["list", "locks", "--no-lock"]);
        let out = c.output().unwrap();
        if !out.status.success() && text(&out).contains("location failed: invalid backend") {
            eprintln!(
                "restic {:?} is built without the backend of {repo}",
                r.version
            );
            continue;
        }
        assert!(
            out.status.success(),
            "restic {:?}: {}",
            r.version,
            text(&out)
        );
        let mut ids: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        ids.sort();
        match &first {
            Some(f) => assert_eq!(&ids, f, "restic {:?} lists otherwise", r.version),
            None => first = Some(ids),
        }
    }
    first.expect("some restic release reads this backend")
}

/// The IDs of every lock file locksmith reports, readable or not.
fn every_id(report: &Value) -> Vec<String> {
    let mut ours: Vec<String> = by_id(report).into_keys().collect();
    ours.extend(
        report["unreadable"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string()),
    );
    ours.sort();
    ours
}

#[test]
fn rest_server_plain_and_restic_agree() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), None, None);
    let url = srv.url("", "repo/");
    let remote = same_as_local(&t, &url, &[]);
    assert_eq!(remote["repository"], url.as_str());
    // Each restic reads the same locks through the same server.
    assert_eq!(each_restic_lists(&t, &url, &[], &[]), every_id(&remote));
}

#[test]
fn rest_server_with_basic_auth() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), Some(("backup", "Rest-Pass-8812")), None);
    same_as_local(&t, &srv.url("backup:Rest-Pass-8812@", "repo/"), &[]);
    same_as_local(
        &t,
        &srv.url("", "repo/"),
        &[
            ("RESTIC_REST_USERNAME", "backup"),
            ("RESTIC_REST_PASSWORD", "Rest-Pass-8812"),
        ],
    );
    let start = Instant::now();
    let out = report_via(&t, &srv.url("backup:Wrong-Pass-8812@", "repo/"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("authentication failed") && e.contains("backup:***@"),
        "{e}"
    );
    assert!(!text(&out).contains("Wrong-Pass-8812"));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "no retries on 401"
    );
}

#[test]
fn rest_server_over_https_with_restic_cacert() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let (ca, cert, key) = write_tls(t.dir.path());
    let srv = RestServer::start(t.dir.path(), None, Some((&cert, &key)));
    let url = srv.url("", "repo/");
    same_as_local(&t, &url, &[("RESTIC_CACERT", ca.to_str().unwrap())]);
    // Without the CA the server is not trusted: a clear failure, not a hang.
    let out = report_via(&t, &url, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the repository"));
}

#[test]
fn rclone_remote_is_served_for_the_run_and_stopped() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let spec = format!("rclone:{}", t.path.display());
    same_as_local(&t, &spec, &[]);
    let left = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("serve restic --addr 127.0.0.1:[0-9]+ {}", t.path.display()),
        ])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "rclone left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn transient_server_errors_are_retried() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    proxy.set_fault(Fault::Every3rd500);
    same_as_local(
        &t,
        &format!("rest:http://127.0.0.1:{}/repo/", proxy.port),
        &[],
    );
    // Every third request failed, yet every answer is there: the failed ones were asked
    // again, so some paths were requested more than once.
    let mut asked = std::collections::BTreeMap::<String, usize>::new();
    for r in proxy.taken() {
        *asked.entry(format!("{} {}", r.method, r.path)).or_default() += 1;
    }
    let again = asked.values().filter(|n| **n > 1).count();
    assert!(
        again * 4 >= asked.len(),
        "{again} of {} requests repeated: {asked:#?}",
        asked.len()
    );
}

#[test]
fn a_server_that_goes_away_fails_clearly() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    proxy.set_fault(Fault::Gone);
    let start = Instant::now();
    let out = report_via(
        &t,
        &format!("rest:http://127.0.0.1:{}/repo/", proxy.port),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&format!("rest:http://127.0.0.1:{}/repo/", proxy.port))
            && e.contains("attempts"),
        "{e}"
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_stalled_server_hits_the_time_limit() {
    crate::needs!("restic", "rclone");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    proxy.set_fault(Fault::Stall);
    let start = Instant::now();
    let mut c = t.locksmith();
    c.env(
        "RESTIC_REPOSITORY",
        format!("rest:http://127.0.0.1:{}/repo/", proxy.port),
    )
    .args(["locks", "--timeout", "1"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timed out"),
        "{}",
        text(&out)
    );
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn s3_with_a_prefix() {
    crate::needs!("restic", "moto_server");
    let t = busy_repo();
    let s3 = MotoS3::start();
    s3.upload(&t.path, "backups/host-a/repo");
    let repo = format!("s3:{}/backups/host-a/repo", s3.endpoint());
    let env = [
        ("AWS_ACCESS_KEY_ID", "test-key"),
        ("AWS_SECRET_ACCESS_KEY", "Aws-Secret-3317"),
    ];
    let remote = same_as_local(&t, &repo, &env);
    // Each restic reads the same repository there.
    assert_eq!(each_restic_lists(&t, &repo, &env, &[]), every_id(&remote));
    // A missing bucket or prefix is "no repository".
    let out = report_via(&t, &format!("s3:{}/backups/elsewhere", s3.endpoint()), &env);
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert!(!text(&out).contains("Aws-Secret-3317"));
}

#[test]
fn azure_blob_on_azurite() {
    crate::needs!("restic", "azurite-blob");
    let t = busy_repo();
    let az = Daemon::azurite();
    let endpoint = format!("{}/devstoreaccount1", az.url());
    azurite_upload(&az, &t.path, "backups", "host-a");
    let env = [
        ("AZURE_ACCOUNT_NAME", "devstoreaccount1"),
        ("AZURE_ACCOUNT_KEY", AZURITE_KEY),
    ];
    let mut c = t.locksmith();
    c.env("RESTIC_REPOSITORY", "azure:backups:/host-a")
        .envs(env)
        .args([
            "-o",
            &format!("azure.endpoint={endpoint}"),
            "locks",
            "--json",
        ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(AZURITE_KEY));
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(essence(&remote), essence(&t.locks_json()));
    // Each restic reads the same repository (its SDK maps this account to port 10000).
    assert_eq!(
        each_restic_lists(&t, "azure:backups:/host-a", &env, &[]),
        every_id(&remote)
    );
}

#[test]
fn google_cloud_storage_on_the_emulator() {
    crate::needs!("restic", "rclone", "gcp-storage-emulator");
    let t = busy_repo();
    let gcs = Daemon::gcs("backups");
    rclone_copy(
        &t.path,
        ":gcs:backups/host-a",
        &[
            ("RCLONE_GCS_ENDPOINT", &format!("{}/storage/v1/", gcs.url())),
            ("RCLONE_GCS_ANONYMOUS", "true"),
        ],
    );
    let mut c = t.locksmith();
    c.env("RESTIC_REPOSITORY", "gs:backups:/host-a").args([
        "-o",
        &format!("gs.endpoint={}", gcs.url()),
        "locks",
        "--json",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(essence(&remote), essence(&t.locks_json()));
}

#[test]
fn sftp_through_a_private_sshd() {
    crate::needs!("restic", "sshd");
    if !is_root() {
        skip("the private sshd logs in as root");
        return;
    }
    let t = busy_repo();
    let sshd = Sshd::start();
    let repo = format!("sftp://root@127.0.0.1:{}/{}", sshd.port, t.path.display());
    let before = std::fs::read_dir(t.dir.path()).unwrap().count();
    let mut c = t.locksmith();
    c.env("RESTIC_REPOSITORY", &repo)
        .arg("-o")
        .arg(format!("sftp.key={}", sshd.client_key.display()))
        .args(["-o", "sftp.known-hosts=accept", "locks", "--json"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let remote: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(essence(&remote), essence(&t.locks_json()));
    assert_eq!(
        std::fs::read_dir(t.dir.path()).unwrap().count(),
        before,
        "nothing written"
    );
    // Each restic reads the same repository through the same server.
    let command = format!("sftp.command={}", sshd.restic_command());
    assert_eq!(
        each_restic_lists(&t, &repo, &[], &["-o", &command]),
        every_id(&remote)
    );
    // A path that is not there: no repository, and no directory made for it.
    let missing = t.dir.path().join("no-such-repo");
    let mut c = t.locksmith();
    c.env(
        "RESTIC_REPOSITORY",
        format!("sftp://root@127.0.0.1:{}/{}", sshd.port, missing.display()),
    )
    .arg("-o")
    .arg(format!("sftp.key={}", sshd.client_key.display()))
    .args(["-o", "sftp.known-hosts=accept", "locks"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert!(!missing.exists());
}

/// A slow run shows its progress on a terminal's stderr, and only there.
#[test]
fn progress_shows_on_a_terminal_only() {
    crate::needs!("restic", "rclone", "script");
    let t = busy_repo();
    let srv = RestServer::start(t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    proxy.set_fault(Fault::Slow);
    let repo = format!("rest:http://127.0.0.1:{}/repo/", proxy.port);
    let cmd = format!(
        "{} locks --connections 2 >/dev/null",
        env!("CARGO_BIN_EXE_locksmith")
    );
    let mut like = t.locksmith();
    like.env("RESTIC_REPOSITORY", &repo);
    let out = on_terminal(&cmd, &like).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("locksmith: reading locks"), "{tty}");
    let piped = report_via(&t, &repo, &[]);
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("reading locks"));
}
