//! Holders, not files: a job followed across restic's lock replacements (a new file and a
//! new ID at every refresh), in `locks`, `/locks`, `/metrics` and the page; and serve's
//! backoff after a wrong password.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::serve::{Metrics, Serve, serve_one};

const HOLDER_SINCE: &str = "locksmith_holder_since_timestamp_seconds";

/// The one holder of the only repository `serve` watches, with its repository's name.
fn only_holder(serve: &Serve) -> (String, Value) {
    let doc = serve.locks();
    let repo = &doc["repositories"][0];
    let holders = repo["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{doc:#}");
    (
        repo["name"].as_str().unwrap().to_string(),
        holders[0].clone(),
    )
}

/// The sample lines of `family` for `repository`, labels and value.
fn series(m: &Metrics, family: &str, repository: &str) -> Vec<String> {
    let head = format!("{family}{{repository=\"{}\"", repository);
    m.0.lines()
        .filter(|l| l.starts_with(&head))
        .map(String::from)
        .collect()
}

fn time_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn exclusive_at(minutes: i64) -> locksmith::locks::Lock {
    let mut l = lock_at(minutes_ago(minutes), "hostb", 4242);
    l.exclusive = true;
    l
}

/// restic replaces its lock at every refresh: a new file, then the old one removed. serve
/// follows the job: `held_since` stays the first lock's time, the holder's series keeps
/// its labels and value, and only the per-lock series change.
#[test]
fn a_holder_survives_its_lock_replacements() {
    let t = TestRepo::new(2);
    let first = exclusive_at(120);
    let first_id = t.seal(&first, Encoding::Zstd);
    let serve = serve_one(&t, &[]);
    serve.wait_settled(&[]);
    let (name, before) = only_holder(&serve);
    let since = first.time.with_timezone(&Utc).timestamp();
    assert_eq!(time_of(&before["held_since"]).timestamp(), since);
    let m = serve.metrics();
    let holder_series = series(&m, HOLDER_SINCE, &name);
    assert_eq!(holder_series.len(), 1, "{}", m.0);
    assert!(
        holder_series[0].ends_with(&format!(" {since}")),
        "{holder_series:?}"
    );
    assert_eq!(m.get("locksmith_exclusive_held", &name), 1.0);

    // The refresh, as restic does it.
    let second_id = t.seal(&exclusive_at(0), Encoding::Zstd);
    // A one-shot run sees both files: one job, held since the older.
    let shot = t.locks_json();
    assert_eq!(shot["holders"].as_array().unwrap().len(), 1, "{shot:#}");
    assert_eq!(shot["holders"][0]["lock_ids"].as_array().unwrap().len(), 2);
    assert_eq!(
        time_of(&shot["holders"][0]["held_since"]).timestamp(),
        since
    );
    std::fs::remove_file(t.locks_dir().join(&first_id)).unwrap();
    serve.wait_for(20, "the replacement read", |doc| {
        let ids = &doc["repositories"][0]["holders"][0]["lock_ids"];
        ids.as_array()
            .is_some_and(|v| v.len() == 1 && v[0] == second_id.as_str())
    });
    let (_, after) = only_holder(&serve);
    assert_eq!(after["held_since"], before["held_since"], "{after:#}");
    let m = serve.metrics();
    assert_eq!(series(&m, HOLDER_SINCE, &name), holder_series, "{}", m.0);
    assert_eq!(m.lock_ids(&name), vec![second_id.clone()]);
    let written = m
        .value("locksmith_lock_timestamp_seconds", &name, &second_id)
        .unwrap();
    assert!((Utc::now().timestamp() as f64 - written).abs() < 60.0);
    assert!(m.get("locksmith_exclusive_held_seconds_total", &name) > 0.0);
    // A one-shot run now sees only the new file: it cannot know the job is older.
    let shot = t.locks_json();
    assert!(time_of(&shot["holders"][0]["held_since"]).timestamp() > since + 3600);
}

/// The table and the status page show the job as well as its files.
#[test]
fn table_and_page_show_holders() {
    let t = TestRepo::new(2);
    t.seal(&exclusive_at(90), Encoding::Zstd);
    t.seal(&exclusive_at(1), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(3), "hostc", 7), Encoding::Json);
    let out = t.locksmith().arg("locks").output().unwrap();
    let table = text(&out);
    assert!(table.contains("held by 2 job(s):"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("bob@hostb"))
        .unwrap_or_else(|| panic!("no holder row:\n{table}"));
    assert!(row.contains("4242") && row.contains("exclusive"), "{row}");
    assert!(row.contains(" 2 "), "two lock files: {row}");

    let serve = serve_one(&t, &[]);
    serve.wait_settled(&[]);
    let (_, html, _) = serve.get("/");
    assert!(html.contains("<caption>held by 2 jobs</caption>"), "{html}");
    assert!(
        html.contains("<td>bob@hostb</td><td>4242</td><td>exclusive</td>"),
        "{html}"
    );
}

/// A live restic on this host: its job has held the lock since its process started, which
/// here is 3 s before its lock (its password command sleeps first).
#[test]
fn a_live_holder_here_is_held_since_its_process_started() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let mut backup = t
        .restic()
        .args(["backup", "--stdin", "--stdin-filename", "f"])
        .env_remove("RESTIC_PASSWORD")
        .env(
            "RESTIC_PASSWORD_COMMAND",
            format!("sh -c 'sleep 3; echo {PASSWORD}'"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Utc::now();
    t.wait_for_locks(0);
    let report = t.locks_json();
    drop(backup.stdin.take());
    let _ = backup.kill();
    let _ = backup.wait();
    let h = &report["holders"][0];
    assert_eq!(h["holder"], "alive", "{report:#}");
    assert_eq!(h["pid"], backup.id());
    let since = time_of(&h["held_since"]);
    let lock_time = time_of(&report["locks"][0]["time"]);
    assert!(
        lock_time - since >= chrono::Duration::seconds(2),
        "{since} vs its lock's {lock_time}"
    );
    assert!(
        (started - since).num_seconds().abs() <= 1,
        "{since} vs {started}"
    );
}

/// A real `restic backup` held open past its first 5-minute refresh: restic writes a new
/// lock file and removes the old one. serve sees one job throughout. This test takes
/// about six minutes.
#[test]
fn restic_backup_refreshing_its_own_lock_stays_one_holder() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let serve = serve_one(&t, &[]);
    serve.wait_settled(&[]);
    let (name, before) = only_holder(&serve);
    let first_ids = before["lock_ids"].clone();
    let m = serve.metrics();
    let holder_series = series(&m, HOLDER_SINCE, &name);
    let started = Instant::now();
    let replaced = loop {
        let (_, h) = only_holder(&serve);
        if h["lock_ids"] != first_ids && h["lock_ids"].as_array().unwrap().len() == 1 {
            break h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(420),
            "restic did not replace its lock within 7 minutes: {h:#}\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    // While the job still runs (its lock goes when it ends): the same series, labels and
    // value, across the replacement.
    let m = serve.metrics();
    assert_eq!(series(&m, HOLDER_SINCE, &name), holder_series, "{}", m.0);
    // The job ends well: restic's own refresh found nothing amiss.
    {
        use std::io::Write;
        let mut stdin = backup.stdin.take().unwrap();
        stdin.write_all(b"six minutes of data").unwrap();
    }
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(replaced["held_since"], before["held_since"], "{replaced:#}");
    assert_eq!(replaced["holder"], "alive");
    assert!(
        !t.lock_names()
            .contains(&first_ids[0].as_str().unwrap().to_string())
    );
}

/// A wrong password is tried again at growing intervals, not at every refresh (each try is
/// a full key derivation), and the failure shows at once with when the next try is.
#[test]
fn a_wrong_password_is_retried_with_backoff() {
    let t = TestRepo::new(2);
    let pw = crate::serve::password_file(t.dir.path(), "wrong", "not-the-password");
    let repo = t.path.display().to_string();
    let started = Instant::now();
    let serve = Serve::start(
        &["-r", &repo, "-p", pw.to_str().unwrap(), "--interval", "1"],
        &[],
    );
    let doc = serve.wait_for(10, "the failure", |doc| {
        !doc["repositories"][0]["error"].is_null()
    });
    assert!(started.elapsed() < Duration::from_secs(5), "{doc:#}");
    let repo = &doc["repositories"][0];
    assert!(repo["error"].as_str().unwrap().contains("wrong password"));
    let retry = serve.wait_for(10, "retry_at", |doc| {
        !doc["repositories"][0]["retry_at"].is_null()
    });
    assert!(time_of(&retry["repositories"][0]["retry_at"]) > Utc::now());
    let (_, page, _) = serve.get("/");
    assert!(page.contains("next attempt at"), "{page}");
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let name = repo["name"].as_str().unwrap();
    let derived = serve.metrics().get("locksmith_key_derivations_total", name);
    // Every second, it would be about 12; doubling from 2 s, tries at 0, 2, 6 (and 14).
    assert!(
        (2.0..=4.0).contains(&derived),
        "{derived} derivations in 12 s"
    );
    assert!(!serve.log().contains("not-the-password"));
}
