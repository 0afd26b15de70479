//! The audited unlock, as operators run it: the binary started as `unlock`, real restic,
//! real SMTP and HTTP receivers, promtool.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use locksmith::seal::{Encoding, seal_foreign};
use regex::Regex;
use serde_json::Value;

use crate::common::*;
use crate::services::*;

const HOST: &str = "test-node";

struct Unlock {
    t: TestRepo,
    log: PathBuf,
    hooks: PathBuf,
    bin: PathBuf,
    env: BTreeMap<String, String>,
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Unlock {
    fn new(version: u32) -> Unlock {
        let t = TestRepo::new(version);
        let root = t.dir.path().to_path_buf();
        for d in ["log", "hooks", "bin", "home"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let bin = root.join("bin").join("unlock");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_locksmith"), &bin).unwrap();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("PATH", std::env::var("PATH").unwrap()),
            ("HOME", root.join("home").display().to_string()),
            ("RESTIC_REPOSITORY", t.path.display().to_string()),
            ("RESTIC_PASSWORD", PASSWORD.to_string()),
            ("RESTIC_CACHE_DIR", root.join("cache").display().to_string()),
            ("UNLOCK_LOG_DIR", root.join("log").display().to_string()),
            ("UNLOCK_HOOK_DIR", root.join("hooks").display().to_string()),
            ("HOSTNAME", HOST.to_string()),
            ("TZ", "UTC".to_string()),
        ] {
            env.insert(k.to_string(), v);
        }
        Unlock {
            log: root.join("log"),
            hooks: root.join("hooks"),
            bin,
            env,
            t,
        }
    }

    fn set(&mut self, k: &str, v: impl Into<String>) -> &mut Self {
        self.env.insert(k.into(), v.into());
        self
    }

    fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_no_secret(&out, PASSWORD);
        out
    }

    fn run_code(&self, args: &[&str]) -> i32 {
        let out = self.run(args);
        out.status
            .code()
            .unwrap_or_else(|| panic!("{}", text(&out)))
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.log.join(name)).unwrap_or_default()
    }

    fn summary(&self) -> Value {
        serde_json::from_str(&self.file("last-unlock.json")).unwrap()
    }

    fn run_log(&self) -> String {
        self.file("unlock-last.log")
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn dry_run_changes_nothing_then_unlock_removes_what_it_predicted() {
    crate::needs!("restic");
    let u = Unlock::new(2);
    let here = this_host();
    u.t.seal(&lock_at(minutes_ago(3), &here, dead_pid()), Encoding::Zstd);
    u.t.seal(&lock_at(minutes_ago(3), "otherhost", 5), Encoding::Zstd);
    u.t.seal(&lock_at(minutes_ago(45), "otherhost", 6), Encoding::Zstd);
    let (foreign, bytes) = seal_foreign(b"{}");
    u.t.write_lock_file(&foreign, &bytes);

    let before = snapshot(&u.t.path);
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert_eq!(snapshot(&u.t.path), before, "a dry run changes nothing");
    let s = u.summary();
    assert_eq!(s["dry_run"], "ON");
    assert_eq!(s["locks_before"], "4");
    assert_eq!(s["locks_after"], "4");
    assert_eq!(s["exit_code"], 0);
    let predicted_keep = predicted_keep(&s);
    assert_eq!(predicted_keep.len(), 1);
    let log = u.run_log();
    assert!(
        log.contains("dry run: would run restic unlock; nothing removed"),
        "{log}"
    );
    assert!(
        log.contains("restic unlock REMOVES") && log.contains("restic unlock keeps"),
        "{log}"
    );
    assert!(
        log.contains(&format!("unreadable {}", &foreign[..8])),
        "{log}"
    );

    // The real run removes exactly those; restic keeps what it cannot read.
    assert_eq!(u.run_code(&[]), 0, "{}", u.run_log());
    let mut expect = predicted_keep.clone();
    expect.push(foreign.clone());
    expect.sort();
    assert_eq!(u.t.lock_names(), expect);
    let s = u.summary();
    assert_eq!(
        (s["locks_before"].clone(), s["locks_after"].clone()),
        ("4".into(), "2".into())
    );
    let log = u.run_log();
    assert!(log.contains("running: restic unlock\n"), "{log}");
    assert!(
        log.contains("successfully removed locks"),
        "restic's output is in the log: {log}"
    );
    assert!(log.contains("result: success"));

    // otherhost's 3-minute-old lock: nobody here can judge it, so it is presumed alive
    // and --remove-all is refused until it is abandoned, or forced.
    assert_eq!(u.run_code(&["--remove-all"]), 20, "{}", u.run_log());
    assert_eq!(u.t.lock_names().len(), 2);
    assert!(
        u.run_log().contains("--peer otherhost=URL"),
        "{}",
        u.run_log()
    );
    assert_eq!(u.run_code(&["--remove-all", "--force"]), 0);
    assert!(u.t.lock_names().is_empty());
    let s = u.summary();
    assert_eq!(
        (s["locks_before"].clone(), s["locks_after"].clone()),
        ("2".into(), "0".into())
    );
    assert_eq!(s["remove_all"], "ON");
    assert!(
        u.run_log()
            .contains("running: restic unlock --remove-all\n")
    );
}

#[test]
fn summary_is_read_line_by_line_like_the_status_reader() {
    crate::needs!("restic");
    let mut u = Unlock::new(1);
    u.t.seal(&lock_at(minutes_ago(1), "otherhost", 5), Encoding::Json);
    u.t.seal(&lock_at(minutes_ago(2), "otherhost", 6), Encoding::Json);
    u.set("TZ", "XYZ-5:30");
    u.set("RESTIC_BACKUP_HELPER_RELEASE", "2.14.2-0.18.1");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    let raw = u.file("last-unlock.json");
    assert!(raw.ends_with("}\n"));
    let v: Value = serde_json::from_str(&raw).unwrap();
    let ts = r#""\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0530""#;
    let expect = [
        ("job", r#""unlock""#.to_string()),
        ("hostname", format!("\"{HOST}\"")),
        ("release", r#""2\.14\.2-0\.18\.1""#.to_string()),
        ("started_at", ts.to_string()),
        ("finished_at", ts.to_string()),
        ("started_epoch", r"\d+".to_string()),
        ("finished_epoch", r"\d+".to_string()),
        ("duration_seconds", r"\d+".to_string()),
        (
            "repository",
            format!("\"{}\"", regex::escape(&u.t.path.display().to_string())),
        ),
        ("remove_all", r#""(ON|OFF)""#.to_string()),
        ("dry_run", r#""ON""#.to_string()),
        ("locks_before", r#""(\d+|unknown)""#.to_string()),
        ("locks_after", r#""(\d+|unknown)""#.to_string()),
        ("exit_code", r"\d+".to_string()),
    ];
    let lines: Vec<&str> = raw.lines().collect();
    assert_eq!(lines[0], "{");
    for (i, (key, value)) in expect.iter().enumerate() {
        let re = Regex::new(&format!(r#"^  "{key}": {value},$"#)).unwrap();
        assert!(
            re.is_match(lines[i + 1]),
            "line {}: {:?} !~ {re}",
            i + 1,
            lines[i + 1]
        );
        // Exactly one line anywhere starts with this key.
        let anchored = Regex::new(&format!(r#"^\s*"{key}":"#)).unwrap();
        assert_eq!(
            lines.iter().filter(|l| anchored.is_match(l)).count(),
            1,
            "{key}"
        );
    }
    assert_eq!(v["locks_before"], "2");
    let lock_lines: Vec<&&str> = lines.iter().filter(|l| l.starts_with("    {")).collect();
    assert_eq!(lock_lines.len(), 2, "one lock per line:\n{raw}");
    for l in lock_lines {
        let obj: Value = serde_json::from_str(l.trim_end_matches(',')).unwrap();
        assert_eq!(obj["hostname"], "otherhost");
    }
    assert!(v["started_epoch"].as_i64().unwrap() <= v["finished_epoch"].as_i64().unwrap());
}

#[test]
fn metrics_pass_promtool() {
    crate::needs!("restic", "promtool");
    let mut u = Unlock::new(2);
    let metrics = u.t.dir.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    u.t.seal(&lock_at(minutes_ago(50), "otherhost", 5), Encoding::Zstd);
    u.set("METRICS_DIR", metrics.display().to_string());
    u.set("HOSTNAME", "node \"with\" \\odd name");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    let path = metrics.join("restic_unlock.prom");
    let text = std::fs::read_to_string(&path).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .expect("promtool is installed (Debian prometheus)");
    assert!(check.status.success(), "{}\n{text}", text_of(&check));
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| &l[..l.find('{').unwrap()])
        .collect();
    assert_eq!(
        names[..5],
        [
            "restic_unlock_last_exit_code",
            "restic_unlock_last_success",
            "restic_unlock_last_duration_seconds",
            "restic_unlock_last_started_timestamp",
            "restic_unlock_last_finished_timestamp"
        ]
    );
    assert!(
        text.contains(
            "restic_unlock_last_success{hostname=\"node \\\"with\\\" \\\\odd name\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("restic_unlock_locks_stale{"));
    assert!(
        Regex::new(r"restic_unlock_oldest_lock_age_seconds\{[^}]*\} (29\d\d|30\d\d)\n")
            .unwrap()
            .is_match(&text),
        "{text}"
    );

    // A missing directory is logged and skipped.
    u.set("METRICS_DIR", "/nonexistent/metrics");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(u.run_log().contains("does not exist, skipped"));
}

fn text_of(o: &Output) -> String {
    text(o)
}

#[test]
fn webhook_posts_the_summary_and_never_changes_the_exit_code() {
    crate::needs!("restic");
    let recv = TestServer::start(Mode::Ok);
    let mut u = Unlock::new(2);
    u.set("WEBHOOK_URL", recv.url("/hooks/Secret-Path?token=Tok-991"));
    u.set("WEBHOOK_HEADER_AUTH", "Bearer Hook-Auth-7731");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    let reqs = recv.taken();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hooks/Secret-Path?token=Tok-991");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["authorization"], "Bearer Hook-Auth-7731");
    let json = u.file("last-unlock.json");
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        json.strip_suffix('\n').unwrap()
    );
    let log = u.run_log();
    assert!(
        log.contains("webhook http://127.0.0.1/...: delivered"),
        "{log}"
    );
    for secret in ["Secret-Path", "Tok-991", "Hook-Auth-7731"] {
        assert!(
            !log.contains(secret) && !json.contains(secret),
            "{secret} leaked"
        );
    }

    recv.set(Mode::Fail);
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(
        u.run_log().contains("not delivered: answered 500"),
        "{}",
        u.run_log()
    );

    recv.set(Mode::Hang);
    u.set("WEBHOOK_TIMEOUT", "1");
    let start = Instant::now();
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        u.run_log().contains("no answer within 1 s"),
        "{}",
        u.run_log()
    );

    recv.set(Mode::Ok);
    u.set("WEBHOOK_TIMEOUT", "soon");
    u.set("WEBHOOK_ON_ERROR", "ON");
    let n = recv.taken().len();
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert_eq!(
        recv.taken().len(),
        n,
        "no POST on success with WEBHOOK_ON_ERROR=ON"
    );
    assert!(
        u.run_log()
            .contains("WEBHOOK_TIMEOUT=\"soon\" is not a positive integer")
    );
    u.unset("RESTIC_PASSWORD");
    assert_eq!(u.run_code(&["--dry-run"]), 2);
    let reqs = recv.taken();
    assert_eq!(reqs.len(), n + 1);
    let body: Value = serde_json::from_slice(&reqs[n].body).unwrap();
    assert_eq!(body["exit_code"], 2);
}

#[test]
fn mail_logs_in_where_the_server_asks_and_never_shows_the_password() {
    crate::needs!("restic", "python3:aiosmtpd");
    let sink = SmtpSink::start_with_login("mailer", "Smtp-Login-7713");
    let mut u = Unlock::new(2);
    u.set("SMTP_HOST", "127.0.0.1")
        .set("SMTP_PORT", sink.port.to_string())
        .set("MAILX_RCPT", "ops@example.com")
        .set("SMTP_USER", "mailer")
        .set("SMTP_PASSWORD", "Smtp-Login-7713");
    let ok = u.run(&["--dry-run"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(sink.mails().len(), 1, "{}", u.run_log());
    assert!(u.file("unlock-mail-last.log").contains("login as mailer"));
    let mut seen = vec![u.run_log(), u.file("unlock-mail-last.log")];

    // A wrong password: refused, said so, and the run's own result stands.
    u.set("SMTP_PASSWORD", "Wrong-Login-7713");
    let refused = u.run(&["--dry-run"]);
    assert_eq!(refused.status.code(), Some(0));
    assert_eq!(sink.mails().len(), 1);
    let log = u.run_log();
    assert!(
        log.contains("ERROR: mail to ops@example.com: not sent"),
        "{log}"
    );
    seen.extend([log, u.file("unlock-mail-last.log")]);
    for out in [&ok, &refused] {
        seen.push(String::from_utf8_lossy(&out.stdout).into_owned());
        seen.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    for text in seen {
        assert!(
            !text.contains("Smtp-Login-7713") && !text.contains("Wrong-Login-7713"),
            "{text}"
        );
    }
}

#[test]
fn mail_carries_the_run_log_under_the_contract_subject() {
    crate::needs!("restic", "python3:aiosmtpd");
    let sink = SmtpSink::start();
    let mut u = Unlock::new(2);
    u.set("SMTP_HOST", "127.0.0.1");
    u.set("SMTP_PORT", sink.port.to_string());
    u.set("MAILX_RCPT", "ops@example.com");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let subject = Regex::new(&format!(
        r"^\[OK\] Unlock {HOST} · \d+s · {}$",
        regex::escape(&u.t.path.display().to_string())
    ))
    .unwrap();
    assert!(
        subject.is_match(&mails[0].subject),
        "{:?}",
        mails[0].subject
    );
    assert_eq!(mails[0].to, "ops@example.com");
    let log = u.run_log();
    assert!(mails[0].body.contains("result: success"));
    assert!(
        log.starts_with(mails[0].body.trim_end()),
        "body is the run log:\n{}\n---\n{log}",
        mails[0].body
    );
    assert!(log.contains("mail to ops@example.com: sent (250"), "{log}");
    assert!(u.file("unlock-mail-last.log").contains("accepted: 250"));

    // Only on failure.
    u.set("MAILX_ON_ERROR", "on");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert_eq!(sink.mails().len(), 1);
    u.unset("RESTIC_REPOSITORY");
    assert_eq!(u.run_code(&["--dry-run"]), 2);
    let mails = sink.mails();
    assert_eq!(mails.len(), 2);
    assert!(
        mails[1]
            .subject
            .starts_with(&format!("[FAIL 2] Unlock {HOST} · ")),
        "{}",
        mails[1].subject
    );

    // The msmtp configuration when there are no SMTP_* variables.
    let rc = u.t.dir.path().join("msmtprc");
    std::fs::write(&rc, format!("defaults\nauth off\naccount main\nhost 127.0.0.1\nport {}\nfrom backup@example.com\naccount default : main\n", sink.port)).unwrap();
    u.unset("SMTP_HOST")
        .unset("SMTP_PORT")
        .unset("MAILX_ON_ERROR");
    u.set("MSMTP_CONFIG", rc.display().to_string());
    assert_eq!(u.run_code(&["--dry-run"]), 2);
    assert_eq!(sink.mails().len(), 3);
    assert!(sink.raw().contains("From: backup@example.com"));

    // An unreachable server: logged, written to the transcript, exit code unchanged.
    std::fs::write(
        &rc,
        format!("account main\nhost 127.0.0.1\nport {}\n", free_port()),
    )
    .unwrap();
    u.set("RESTIC_REPOSITORY", u.t.path.display().to_string());
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(
        u.run_log()
            .contains("ERROR: mail to ops@example.com: not sent")
    );
    assert!(u.file("unlock-mail-last.log").contains("not sent"));
}

#[test]
fn hooks_get_their_arguments_and_their_failures_are_ignored() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    let trace = u.t.dir.path().join("trace");
    write_script(
        &u.hooks.join("pre-unlock.sh"),
        &format!("echo \"pre:$#\" >> {}", trace.display()),
    );
    write_script(
        &u.hooks.join("post-unlock.sh"),
        &format!("echo \"post:$#:$1\" >> {}", trace.display()),
    );
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap(),
        "pre:0\npost:1:0\n"
    );
    u.unset("RESTIC_PASSWORD");
    assert_eq!(u.run_code(&["--dry-run"]), 2);
    assert!(
        std::fs::read_to_string(&trace)
            .unwrap()
            .ends_with("post:1:2\n")
    );
    u.set("RESTIC_PASSWORD", PASSWORD);

    std::fs::remove_file(u.hooks.join("post-unlock.sh")).unwrap();
    std::fs::set_permissions(
        u.hooks.join("pre-unlock.sh"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    let log = u.run_log();
    assert!(log.contains("post-unlock.sh: not found, skipped"), "{log}");
    assert!(
        log.contains("ERROR: hook") && log.contains("pre-unlock.sh is not executable, skipped"),
        "{log}"
    );

    write_script(&u.hooks.join("pre-unlock.sh"), "exit 7");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(
        u.run_log().contains("failed (exit status: 7), ignored"),
        "{}",
        u.run_log()
    );

    let child_trace = u.t.dir.path().join("child");
    write_script(
        &u.hooks.join("pre-unlock.sh"),
        &format!(
            "(sleep 3; echo survived > {}) & sleep 30",
            child_trace.display()
        ),
    );
    u.set("HOOK_TIMEOUT", "1");
    let start = Instant::now();
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(start.elapsed() < Duration::from_secs(25));
    assert!(
        u.run_log()
            .contains("did not finish within HOOK_TIMEOUT=1 s: killed"),
        "{}",
        u.run_log()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !child_trace.exists(),
        "the hook's own children were killed too"
    );

    u.set("HOOK_TIMEOUT", "-3");
    write_script(&u.hooks.join("pre-unlock.sh"), "exit 0");
    assert_eq!(u.run_code(&["--dry-run"]), 0);
    assert!(
        u.run_log()
            .contains("HOOK_TIMEOUT=\"-3\" is not a non-negative integer")
    );
}

#[test]
fn configuration_errors_exit_2_and_still_leave_the_artefacts() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    let metrics = u.t.dir.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    u.set("METRICS_DIR", metrics.display().to_string());
    u.unset("RESTIC_REPOSITORY");
    let out = u.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let s = u.summary();
    assert_eq!(s["exit_code"], 2);
    assert_eq!(s["locks_before"], "unknown");
    assert_eq!(s["locks_after"], "unknown");
    assert!(
        u.file("unlock-error-last.log")
            .contains("ERROR: configuration error: no repository given")
    );
    assert!(
        std::fs::read_to_string(metrics.join("restic_unlock.prom"))
            .unwrap()
            .contains("restic_unlock_last_exit_code{hostname=\"test-node\"} 2\n")
    );

    u.set("RESTIC_REPOSITORY", u.t.path.display().to_string());
    u.unset("RESTIC_PASSWORD");
    assert_eq!(u.run_code(&[]), 2);
    assert!(u.run_log().contains("no password given"));
    assert_eq!(u.summary()["locks_before"], "unknown");

    // An unknown argument writes nothing at all.
    let fresh = Unlock::new(2);
    std::fs::remove_dir(&fresh.log).unwrap();
    let out = fresh.run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
    assert!(!fresh.log.exists(), "no artefacts for an unknown argument");

    let out = fresh.run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Usage: unlock")
            && help.contains("--dry-run")
            && help.contains("--remove-all"),
        "{help}"
    );
    assert!(help.contains("20  refused"), "{help}");
    assert!(!fresh.log.exists());
}

#[test]
fn restic_failure_codes_pass_through() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    let fake = u.t.dir.path().join("fake-restic");
    write_script(&fake, "echo \"fake restic: $*\"; echo boom >&2; exit 3");
    u.set("RESTIC_BIN", fake.display().to_string());
    assert_eq!(u.run_code(&["--remove-all"]), 3);
    assert_eq!(u.summary()["exit_code"], 3);
    let err = u.file("unlock-error-last.log");
    assert!(
        err.contains("fake restic: unlock --remove-all") && err.contains("boom"),
        "{err}"
    );
    assert!(err.contains("result: FAILED with exit code 3"));

    // Real restic, wrong password: its own failure, and our inspection could not tell.
    u.unset("RESTIC_BIN");
    u.set("RESTIC_PASSWORD", "wrong-password-here");
    assert_eq!(u.run_code(&[]), 1);
    let s = u.summary();
    assert_eq!(s["locks_before"], "unknown");
    assert!(u.run_log().contains("wrong password"), "{}", u.run_log());
    assert!(!u.run_log().contains("wrong-password-here"));
}

/// restic's exit codes changed across releases (10 and 11 from 0.17.0, 12 from 0.17.1):
/// `unlock` passes each through, names it as that release documents it, and records the
/// release.
#[test]
fn restic_exit_codes_pass_through_and_are_named_by_release() {
    crate::needs!("restic");
    for r in restics() {
        let mut u = Unlock::new(2);
        u.set("RESTIC_BIN", r.path.display().to_string());
        u.set("RESTIC_PASSWORD", "not-the-password");
        let (want, words) = if r.at_least(18) {
            (12, "restic exited 12: wrong password or no key found")
        } else {
            (1, "restic exited 1: error")
        };
        assert_eq!(u.run_code(&[]), want, "{r}: {}", u.run_log());
        assert!(u.run_log().contains(words), "{r}: {}", u.run_log());
        let (a, b, c) = r.version;
        assert_eq!(u.summary()["restic_version"], format!("{a}.{b}.{c}"), "{r}");

        u.set("RESTIC_PASSWORD", PASSWORD);
        u.set(
            "RESTIC_REPOSITORY",
            u.t.dir.path().join("nothing-here").display().to_string(),
        );
        let want = if r.at_least(18) { 10 } else { 1 };
        assert_eq!(u.run_code(&[]), want, "{r}: {}", u.run_log());
    }
}

/// `last-unlock.json` as status readers see it, after a dry run over a staged repository.
#[test]
fn last_unlock_json_snapshot() {
    crate::needs!("restic");
    let u = Unlock::new(2);
    crate::snapshots::stage(&u.t);
    assert_eq!(u.run_code(&["--dry-run"]), 0, "{}", u.run_log());
    let json = u.file("last-unlock.json");
    crate::snapshots::settings(&u.t, false).bind(|| insta::assert_snapshot!("last-unlock", json));
}

#[test]
fn unsafe_unlock_is_refused_unless_forced() {
    crate::needs!("restic");
    let u = Unlock::new(2);
    // A live process on this host that is not restic, named by a lock: restic's probe
    // would SIGHUP it.
    let mut bystander = Command::new("sleep").arg("120").spawn().unwrap();
    let id = u.t.seal(
        &lock_at(minutes_ago(0), &this_host(), bystander.id() as i64),
        Encoding::Zstd,
    );
    let out = u.run(&[]);
    assert_eq!(out.status.code(), Some(20), "{}", text(&out));
    assert_eq!(u.t.lock_names(), vec![id.clone()]);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "restic was not called"
    );
    let s = u.summary();
    assert_eq!(s["refused"], "ON");
    assert_eq!(s["exit_code"], 20);
    assert!(s["message"].as_str().unwrap().contains(&id[..8]));
    assert!(
        u.run_log()
            .contains("REFUSED: restic unlock was not run: it would remove a live holder's lock, or send its SIGHUP probe"),
        "{}",
        u.run_log()
    );
    assert!(u.file("unlock-error-last.log").contains("REFUSED"));
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "nothing was removed; --force would send SIGHUP to PID {} (`sleep`), which is not the holder",
            bystander.id()
        )),
        "{message}"
    );
    assert!(
        message.lines().all(|l| l.len() < 400),
        "short lines: {message}"
    );

    // --force: restic runs, and its probe does deliver the SIGHUP.
    assert_eq!(u.run_code(&["--force"]), 0);
    assert_eq!(bystander.wait().unwrap().signal(), Some(1));
    assert!(u.run_log().contains("--force: removing anyway"));
}

/// A PID of 2^32 + P was judged "gone — removes"; restic's probe SIGHUPs P. Refused, with
/// the time from which restic removes it by age (no probe).
#[test]
fn pid_beyond_32_bits_is_refused_by_unlock() {
    crate::needs!("restic");
    let u = Unlock::new(2);
    let mut bystander = Command::new("sleep").arg("120").spawn().unwrap();
    let pid = (1i64 << 32) + i64::from(bystander.id());
    let id =
        u.t.seal(&lock_at(minutes_ago(1), &this_host(), pid), Encoding::Zstd);
    let out = u.run(&[]);
    assert_eq!(out.status.code(), Some(20), "{}", text(&out));
    assert_eq!(u.t.lock_names(), vec![id]);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "restic was not called"
    );
    let log = u.run_log();
    assert!(
        log.contains("low 32 bits") && log.contains("without a probe after"),
        "{log}"
    );
    assert!(
        log.contains("safe after ")
            && log.contains(" UTC, unless refreshed meanwhile: `unlock --wait "),
        "{log}"
    );
    assert!(u.summary()["locks"][0]["safe_after"].is_string());
    let _ = bystander.kill();
}

/// With the locks unreadable, `--remove-all` removed everything unseen: it now refuses
/// unless forced. Plain `unlock` still delegates to restic, with a warning.
#[test]
fn remove_all_with_unreadable_locks_is_refused_unless_forced() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    u.t.seal(&lock_at(minutes_ago(1), "otherhost", 5), Encoding::Zstd);
    // Locks that cannot be read: nothing answers there.
    u.set(
        "RESTIC_REPOSITORY",
        "rest:http://127.0.0.1:9/nothing-listens/",
    );
    assert_eq!(u.run_code(&["--remove-all"]), 20, "{}", u.run_log());
    assert!(u.run_log().contains("could not be read"), "{}", u.run_log());
    assert_eq!(u.summary()["refused"], "ON");
    // Plain unlock delegates to restic (which fails there too), with a warning.
    assert_ne!(u.run_code(&[]), 20);
    assert!(u.run_log().contains("WARNING: the locks could not be read"));
}

#[test]
fn remove_all_is_refused_while_a_holder_is_alive() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    let mut backup =
        u.t.restic()
            .args(["backup", "--stdin", "--stdin-filename", "f"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    u.t.wait_for_locks(0);
    // restic unlock alone keeps a live restic's lock: allowed, nothing removed.
    assert_eq!(u.run_code(&[]), 0);
    assert_eq!(u.t.lock_names().len(), 1);
    assert_eq!(u.run_code(&["--remove-all"]), 20);
    assert_eq!(u.t.lock_names().len(), 1);
    assert!(
        u.run_log()
            .contains("waiting makes it safe only once the holder has ended"),
        "{}",
        u.run_log()
    );
    u.set("LOG_VERBOSE", "OFF");
    let out = u.run(&["--remove-all", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty(), "LOG_VERBOSE=OFF keeps stdout quiet");
    assert!(u.t.lock_names().is_empty());
    backup.kill().unwrap();
    backup.wait().unwrap();
}

#[test]
fn no_secret_reaches_any_output_or_artefact() {
    crate::needs!("restic", "python3:aiosmtpd");
    let sink = SmtpSink::start();
    let recv = TestServer::start(Mode::Ok);
    let mut u = Unlock::new(2);
    let metrics = u.t.dir.path().join("metrics");
    std::fs::create_dir(&metrics).unwrap();
    let secrets = [
        "Hook-Auth-5521",
        "Smtp-Pass-5521",
        "Aws-Secret-5521",
        "Url-Pass-5521",
        PASSWORD,
    ];
    u.set("WEBHOOK_URL", recv.url("/h"));
    u.set("WEBHOOK_HEADER_AUTH", "Bearer Hook-Auth-5521");
    u.set("SMTP_HOST", "127.0.0.1")
        .set("SMTP_PORT", sink.port.to_string());
    u.set("SMTP_USER", "mailer")
        .set("SMTP_PASSWORD", "Smtp-Pass-5521");
    u.set("MAILX_RCPT", "ops@example.com");
    u.set("AWS_SECRET_ACCESS_KEY", "Aws-Secret-5521");
    u.set("METRICS_DIR", metrics.display().to_string());
    // A restic that prints every secret it was given, as a careless one might.
    let fake = u.t.dir.path().join("leaky-restic");
    write_script(
        &fake,
        "echo \"pw=$RESTIC_PASSWORD aws=$AWS_SECRET_ACCESS_KEY auth=$WEBHOOK_HEADER_AUTH smtp=$SMTP_PASSWORD repo=$RESTIC_REPOSITORY\"; exit 1",
    );
    u.set("RESTIC_BIN", fake.display().to_string());
    let mut outputs = vec![u.run(&[])];
    assert_eq!(outputs[0].status.code(), Some(1));
    assert!(
        u.run_log().contains("pw=*** aws=*** auth=*** smtp=***"),
        "{}",
        u.run_log()
    );
    let mut files: Vec<String> = Vec::new();
    let collect = |files: &mut Vec<String>, u: &Unlock| {
        for d in [&u.log, &metrics] {
            for (p, b) in snapshot(d) {
                files.push(format!("{}: {}", p.display(), String::from_utf8_lossy(&b)));
            }
        }
    };
    collect(&mut files, &u);
    // A URL password, with real restic.
    u.unset("RESTIC_BIN");
    u.set(
        "RESTIC_REPOSITORY",
        "rest:http://user:Url-Pass-5521@127.0.0.1:1/repo/",
    );
    outputs.push(u.run(&[]));
    assert_ne!(outputs[1].status.code(), Some(0));
    assert!(
        u.run_log()
            .contains("rest:http://user:***@127.0.0.1:1/repo/"),
        "{}",
        u.run_log()
    );
    collect(&mut files, &u);
    let mut everything = files.join("\n");
    for o in &outputs {
        everything.push_str(&text(o));
    }
    everything.push_str(&sink.raw());
    for r in recv.taken() {
        everything.push_str(&String::from_utf8_lossy(&r.body));
    }
    for s in secrets {
        assert!(!everything.contains(s), "{s} leaked:\n{everything}");
    }
}

/// `locksmith unlock` and the binary started as `unlock` are one command: the same
/// arguments give the same run log, summary and stdout, but for times.
#[test]
fn locksmith_unlock_is_the_same_command() {
    crate::needs!("restic");
    let u = Unlock::new(1);
    u.t.seal(&lock_at(minutes_ago(45), "otherhost", 5), Encoding::Json);
    let untimed = |text: &str| -> Vec<String> {
        let stamp = Regex::new(r"^\[[^\]]*\] ").unwrap();
        let took = Regex::new(r"(finished in|duration_seconds\D+)\d+s?").unwrap();
        text.lines()
            .map(|l| took.replace(&stamp.replace(l, ""), "$1 N").into_owned())
            .filter(|l| !l.contains("_at\"") && !l.contains("_epoch\""))
            .collect()
    };
    let run = |via_locksmith: bool| {
        let out = if via_locksmith {
            let mut c = Command::new(env!("CARGO_BIN_EXE_locksmith"));
            c.args(["unlock", "--dry-run"]).env_clear().envs(&u.env);
            c.output().unwrap()
        } else {
            u.run(&["--dry-run"])
        };
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        (
            untimed(&stdout),
            untimed(&u.run_log()),
            untimed(&u.file("last-unlock.json")),
        )
    };
    let (as_unlock, as_subcommand) = (run(false), run(true));
    assert!(
        as_unlock.1.iter().any(|l| l == "release: unknown"),
        "{:#?}",
        as_unlock.1
    );
    assert!(
        as_unlock
            .2
            .iter()
            .any(|l| l.contains("\"dry_run\": \"ON\""))
    );
    assert_eq!(as_subcommand, as_unlock);
}

#[test]
fn repository_file_wins_over_the_variable() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    u.t.seal(&lock_at(minutes_ago(45), "otherhost", 5), Encoding::Zstd);
    let f = u.t.dir.path().join("repository");
    std::fs::write(
        &f,
        format!("# where the backups go\n\n  {}  \n", u.t.path.display()),
    )
    .unwrap();
    u.set("RESTIC_REPOSITORY", "/nonexistent/elsewhere");
    u.set("RESTIC_REPOSITORY_FILE", f.display().to_string());
    assert_eq!(u.run_code(&[]), 0, "{}", u.run_log());
    let s = u.summary();
    assert_eq!(s["repository"], u.t.path.display().to_string());
    assert_eq!(
        (s["locks_before"].clone(), s["locks_after"].clone()),
        ("1".into(), "0".into())
    );
    assert!(
        u.t.lock_names().is_empty(),
        "restic worked on the file's repository"
    );
}

/// The repository behind a REST server and a proxy that never answers locksmith's reads of
/// `stalled` lock files (restic's requests pass): what locksmith cannot see, restic can.
fn behind_stalling_proxy(u: &mut Unlock, stalled: &[&str]) -> (RestServer, TestServer) {
    let srv = RestServer::start(u.t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    let ids = stalled.iter().map(|s| s.to_string()).collect();
    proxy.set_fault(Fault::StallForLocksmith(std::sync::Arc::new(ids)));
    u.set(
        "RESTIC_REPOSITORY",
        format!("rest:http://127.0.0.1:{}/repo/", proxy.port),
    );
    (srv, proxy)
}

/// `--remove-all` over a reading cut by the deadline deleted a live holder's lock it never
/// saw, with exit 0. It now refuses (exit 20, artefacts written) unless forced.
#[test]
fn remove_all_over_an_incomplete_reading_is_refused() {
    crate::needs!("restic", "rclone");
    let mut u = Unlock::new(2);
    let mut holder = Command::new("sleep").arg("120").spawn().unwrap();
    let live = u.t.seal(
        &lock_at(minutes_ago(0), &this_host(), holder.id() as i64),
        Encoding::Zstd,
    );
    let other =
        u.t.seal(&lock_at(minutes_ago(2), "otherhost", 5), Encoding::Zstd);
    let _servers = behind_stalling_proxy(&mut u, &[&live, &other]);
    let args = ["--remove-all", "--timeout", "2", "--deadline", "4"];
    assert_eq!(u.run_code(&args), 20, "{}", u.run_log());
    assert_eq!(u.t.lock_names().len(), 2, "nothing removed");
    let s = u.summary();
    assert_eq!(
        (s["refused"].clone(), s["exit_code"].clone()),
        ("ON".into(), 20.into())
    );
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("2 of the entries in locks/ were not read"),
        "{message}"
    );
    assert!(u.file("unlock-error-last.log").contains("REFUSED"));

    // --force: restic runs over what was not seen, and says so.
    let forced = [&args[..], &["--force"]].concat();
    assert_eq!(u.run_code(&forced), 0, "{}", u.run_log());
    assert!(u.t.lock_names().is_empty());
    assert!(
        u.run_log()
            .contains("--force: running although 2 of the entries")
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

/// Plain `unlock` over an incomplete reading ran restic, whose probe SIGHUPed a live
/// bystander named by a lock locksmith had not read (PID 2^32 + the bystander's).
#[test]
fn stale_unlock_over_an_incomplete_reading_is_refused() {
    crate::needs!("restic", "rclone");
    let mut u = Unlock::new(2);
    let mut bystander = Command::new("sleep").arg("120").spawn().unwrap();
    let pid = (1i64 << 32) + i64::from(bystander.id());
    let unseen =
        u.t.seal(&lock_at(minutes_ago(1), &this_host(), pid), Encoding::Zstd);
    let _servers = behind_stalling_proxy(&mut u, &[&unseen]);
    assert_eq!(
        u.run_code(&["--timeout", "2", "--deadline", "4"]),
        20,
        "{}",
        u.run_log()
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "restic was not called"
    );
    assert_eq!(u.t.lock_names(), vec![unseen]);
    assert!(
        u.run_log()
            .contains("1 of the entries in locks/ were not read"),
        "{}",
        u.run_log()
    );
    let _ = bystander.kill();
}

/// A dry run whose reading was incomplete exited 0, as if it had seen everything.
#[test]
fn incomplete_dry_run_exits_1_and_says_so() {
    crate::needs!("restic", "rclone");
    let mut u = Unlock::new(2);
    let unseen =
        u.t.seal(&lock_at(minutes_ago(1), "otherhost", 5), Encoding::Zstd);
    u.t.seal(&lock_at(minutes_ago(3), "otherhost", 6), Encoding::Zstd);
    let _servers = behind_stalling_proxy(&mut u, &[&unseen]);
    let out = u.run(&["--dry-run", "--timeout", "2", "--deadline", "4"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        u.run_log().contains("dry run incomplete: 1 of the entries"),
        "{}",
        u.run_log()
    );
    let s = u.summary();
    assert_eq!(
        (s["dry_run"].clone(), s["exit_code"].clone()),
        ("ON".into(), 1.into())
    );
    assert_eq!(u.t.lock_names().len(), 2);
}

/// unlock records what restic removed in serve's history: the job's life ends `removed`
/// (and serve, still watching, does not make it `gone`); the lock restic kept stays held.
#[test]
fn unlock_records_its_removals_in_serves_history() {
    crate::needs!("restic");
    let mut u = Unlock::new(2);
    let state = u.t.dir.path().join("state");
    u.t.seal(&lock_at(minutes_ago(45), "otherhost", 6), Encoding::Zstd);
    u.t.seal(&lock_at(minutes_ago(3), "otherhost", 5), Encoding::Zstd);
    let serve = crate::serve::serve_one(&u.t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    u.set("LOCKSMITH_STATE_DIR", state.display().to_string());
    assert_eq!(u.run_code(&[]), 0, "{}", u.run_log());
    assert!(
        u.run_log().contains("history: 1 removed lock recorded in"),
        "{}",
        u.run_log()
    );
    serve.wait_for(20, "serve sees it gone", |d| {
        d["repositories"][0]["counts"]["total"] == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    let doc = crate::history::history(&state, &[]);
    let lives: Vec<(i64, Value, Value)> = crate::history::lives(&doc)
        .into_iter()
        .map(|(pid, ended, worst, _)| (pid, ended, worst))
        .collect();
    assert_eq!(
        lives,
        vec![
            (5, Value::Null, Value::Null),
            (6, "removed".into(), "stale".into())
        ],
        "{doc:#}"
    );
}

/// A missing restic: the header says it is not found (not that it hung), a dry run fails
/// with that message, and neither run makes up restic's exit code: 127, as a shell says.
#[test]
fn a_missing_restic_is_said_and_never_passed_off_as_restic_s_exit_code() {
    let mut u = Unlock::new(2);
    u.set("RESTIC_BIN", "/nonexistent/restic");
    for args in [&["--dry-run"][..], &[]] {
        let out = u.run(args);
        assert_eq!(out.status.code(), Some(127), "{args:?}: {}", text(&out));
        let log = u.run_log();
        assert!(
            log.contains("restic: restic not found: cannot run /nonexistent/restic"),
            "{log}"
        );
        assert!(log.contains("set RESTIC_BIN"), "{log}");
        assert!(!log.contains("restic exited"), "{log}");
        assert!(!log.contains("did not answer"), "{log}");
        assert!(u.file("last-unlock.json").contains("\"exit_code\": 127"));
    }
    let t = &u.t;
    let out = t
        .locksmith()
        .args(["run", "--", "/nonexistent/restic", "prune"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(text(&out).contains("restic not found"), "{}", text(&out));
}
