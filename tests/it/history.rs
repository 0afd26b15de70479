//! A memory for serve: the history of holders and the last reading in SQLite, across
//! restarts, `kill -9`, a reader beside the writer, retention, `locksmith history` and the
//! status page's timeline in a real browser.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::serve::{Serve, serve_one};

fn exclusive(minutes: i64, host: &str, pid: i64) -> locksmith::locks::Lock {
    let mut l = lock_at(minutes_ago(minutes), host, pid);
    l.exclusive = true;
    l
}

/// `locksmith history --json` over `state`, checked for success.
pub(crate) fn history(state: &Path, extra: &[&str]) -> Value {
    let out = locksmith_cmd()
        .args(["history", "--state-dir", state.to_str().unwrap(), "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The lives of the only repository, by PID: (ended, worst, held_since).
pub(crate) fn lives(doc: &Value) -> Vec<(i64, Value, Value, String)> {
    let mut v: Vec<_> = doc["repositories"][0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["pid"].as_i64().unwrap(),
                h["ended"].clone(),
                h["worst"].clone(),
                h["held_since"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by_key(|l| l.0);
    v
}

fn remove_lock(t: &TestRepo, id: &str) {
    std::fs::remove_file(t.path.join("locks").join(id)).unwrap();
}

/// A restart keeps every holder's life and the last reading: a repository that cannot be
/// read at the restart still shows what was there, marked with its time and failing (so
/// its alerts keep firing); the jobs it held end `unreadable`, and are taken up again
/// (held since before the restart) once it can be read.
#[test]
fn a_restart_keeps_the_history_and_shows_the_last_reading_while_unreadable() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let job = t.seal(&exclusive(3, "hostb", 42), Encoding::Zstd);
    let stale = t.seal(&lock_at(minutes_ago(50), "hostb", 43), Encoding::Zstd);
    let args = ["--state-dir", state.to_str().unwrap()];
    let mut serve = serve_one(&t, &args);
    let before = serve.wait_settled(&[]);
    let name = before["repositories"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let read_at = before["repositories"][0]["refreshed_at"].clone();
    let held = history(&state, &[]);
    assert_eq!(
        lives(&held)
            .iter()
            .map(|l| (l.0, l.1.clone(), l.2.clone()))
            .collect::<Vec<_>>(),
        vec![
            (42, Value::Null, Value::Null),
            (43, Value::Null, "stale".into())
        ],
        "{held:#}"
    );
    assert!(serve.stop().0.success());

    // While serve is down, restic refreshes the job's lock (a new file, the old one
    // removed); then the repository goes away (an unmounted share).
    let refreshed = t.seal(&exclusive(0, "hostb", 42), Encoding::Zstd);
    remove_lock(&t, &job);
    let away = t.dir.path().join("away");
    std::fs::rename(&t.path, &away).unwrap();
    let serve = serve_one(&t, &args);
    let doc = serve.wait_for(30, "the failed first refresh", |d| {
        !d["repositories"][0]["error"].is_null()
    });
    let r = &doc["repositories"][0];
    assert_eq!(r["restored"], true, "{doc:#}");
    assert_eq!(r["refreshed_at"], read_at);
    assert_eq!(r["counts"]["total"], 2, "the last reading: {doc:#}");
    let m = serve.metrics();
    assert_eq!(m.get("locksmith_refresh_success", &name), 0.0);
    assert_eq!(m.get("locksmith_history_write_failures_total", &name), 0.0);
    assert!(m.0.contains(&format!("id=\"{stale}\"")), "{}", m.0);
    let (_, page, _) = serve.get("/");
    assert!(page.contains("before serve restarted"), "{page}");
    let (ready, _, _) = serve.get("/-/ready");
    assert_eq!(ready, 200, "a failed refresh settles it");
    let ended = history(&state, &[]);
    let l = lives(&ended);
    assert_eq!(
        (l[0].1.clone(), l[1].1.clone()),
        ("unreadable".into(), "unreadable".into())
    );

    // Back: the job is taken up again, held since its first lock before the restart.
    std::fs::rename(&away, &t.path).unwrap();
    let doc = serve.wait_for(30, "a reading again", |d| {
        d["repositories"][0]["error"].is_null() && d["repositories"][0]["restored"].is_null()
    });
    let ids: Vec<_> = doc["repositories"][0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].clone(), h["held_since"].clone()))
        .collect();
    let again = history(&state, &[]);
    let l = lives(&again);
    assert_eq!(
        (l[0].0, l[0].1.clone(), &l[0].3),
        (42, Value::Null, &lives(&held)[0].3)
    );
    assert_eq!(l.len(), 2, "no new life for the same job: {again:#}");
    let first = lives(&held)[0].3.clone();
    assert!(
        ids.contains(&(42.into(), first.into())),
        "/locks too: {ids:?}"
    );
    assert!(l[0].3 < Utc::now().to_rfc3339(), "{refreshed}");
}

/// Locks written and removed all the time, and serve killed with SIGKILL in the middle
/// of its writes: the database passes SQLite's integrity check every time, and serve goes
/// on from it.
#[test]
fn kill_9_during_writes_leaves_a_sound_database() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let args = ["--state-dir", state.to_str().unwrap()];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = churn(&t, stop.clone());
    let mut recorded = 0;
    for round in 0..6u64 {
        let mut serve = serve_one(&t, &args);
        std::thread::sleep(Duration::from_millis(1200 + 350 * round));
        serve.signal(libc::SIGKILL);
        let _ = serve.stop();
        let db = rusqlite::Connection::open(state.join("history.sqlite")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "after kill -9 in round {round}");
        // Nothing committed is lost, and the next serve goes on from it.
        let lives: i64 = db
            .query_row("SELECT COUNT(*) FROM holders", [], |r| r.get(0))
            .unwrap();
        assert!(
            lives >= recorded,
            "round {round}: {lives} lives, {recorded} before"
        );
        recorded = lives;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = churn.join().unwrap();
    let doc = history(&state, &[]);
    let n = doc["repositories"][0]["holders"].as_array().unwrap().len();
    assert!(n > 20, "{n} lives recorded of {written} locks written");
}

/// A thread writing a lock of a new PID, and removing the oldest, every 20 ms: a steady
/// stream of lives beginning and ending. Returns how many it wrote.
fn churn(
    t: &TestRepo,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let repo = t.repo().clone();
    let locks = t.path.join("locks");
    std::thread::spawn(move || {
        let mut live = std::collections::VecDeque::new();
        let mut pid = 1000;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            pid += 1;
            let (id, bytes) =
                repo.seal_lock(&lock_at(minutes_ago(0), "churn", pid), Encoding::Zstd);
            std::fs::write(locks.join(&id), bytes).unwrap();
            live.push_back(id);
            if live.len() > 40 {
                let _ = std::fs::remove_file(locks.join(live.pop_front().unwrap()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (pid - 1000) as u64
    })
}

/// `locksmith history` reads while serve writes (WAL): never "database is locked", always
/// a whole document.
#[test]
fn history_reads_while_serve_writes() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = churn(&t, stop.clone());
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let doc = history(&state, &[]);
        assert!(doc["repositories"][0]["summary"].is_object(), "{doc:#}");
        let (status, body, _) = serve.get("/api/v1/history?since=1h");
        assert_eq!(status, 200, "{body}");
        reads += 1;
    }
    // A writer in the middle of a transaction (as serve is, at times) does not keep a
    // reader out: with WAL the reader sees the last commit at once, where a rollback
    // journal would make it wait and fail.
    let db = rusqlite::Connection::open(state.join("history.sqlite")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE; UPDATE repositories SET read_at = read_at")
        .unwrap();
    let doc = history(&state, &[]);
    assert!(doc["repositories"][0]["summary"].is_object(), "{doc:#}");
    db.execute_batch("COMMIT").unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    assert!(reads > 5, "{reads}");
    assert!(
        !serve.log().contains("history not written"),
        "{}",
        serve.log()
    );
}

/// Retention by age, on real clocks: a history written by a serve living 100 days ago
/// (libfaketime) loses those jobs when serve starts with --history-days 30 (the one still
/// held too: its repository was not read since); the job still there is recorded afresh.
#[test]
fn retention_drops_jobs_ended_before_the_days_kept() {
    crate::needs!("faketime");
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let old = t.seal(&lock_at(minutes_ago(0), "hostb", 7), Encoding::Zstd);
    t.seal(&exclusive(0, "hostb", 8), Encoding::Zstd);
    let mut past = Serve::start(
        &[
            "-r",
            t.path.to_str().unwrap(),
            "--interval",
            "1",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[
            ("RESTIC_PASSWORD", PASSWORD),
            ("LD_PRELOAD", &faketime_lib()),
            ("FAKETIME", "-100d"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    past.wait_settled(&[]);
    remove_lock(&t, &old);
    past.wait_for(20, "the job ended", |d| {
        d["repositories"][0]["counts"]["total"] == 1
    });
    assert!(past.stop().0.success());
    let everything = history(&state, &["--since", "2000d"]);
    assert_eq!(lives(&everything).len(), 2, "{everything:#}");

    let now = serve_one(
        &t,
        &[
            "--state-dir",
            state.to_str().unwrap(),
            "--history-days",
            "30",
        ],
    );
    now.wait_settled(&[]);
    let kept = history(&state, &["--since", "2000d"]);
    let l = lives(&kept);
    assert_eq!(
        (l.len(), l[0].0, l[0].1.clone()),
        (1, 8, Value::Null),
        "{kept:#}"
    );
}

/// libfaketime's library, wherever the distribution put it.
pub(crate) fn faketime_lib() -> String {
    let out = Command::new("sh")
        .args(["-c", "ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -1"])
        .output()
        .unwrap();
    let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!lib.is_empty(), "libfaketime.so.1 not found");
    lib
}

/// `locksmith history`: the table with each job and the summary's advice, the JSON shape
/// the issue names (and `/api/v1/history` the same), and clear errors.
#[test]
fn history_shows_each_job_and_sizes_retry_lock() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    // A prune on hostb held its exclusive lock for 86 minutes (it refreshed all along).
    t.seal(&exclusive(86, "hostb", 42), Encoding::Zstd);
    t.seal(&exclusive(1, "hostb", 42), Encoding::Zstd);
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    let doc = history(&state, &[]);
    let r = &doc["repositories"][0];
    let h = &r["holders"][0];
    let mut keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ended",
            "ended_at",
            "exclusive",
            "first_seen",
            "held_since",
            "hostname",
            "last_seen",
            "pid",
            "username",
            "worst"
        ]
    );
    let held = r["summary"]["hosts"][0]["longest_exclusive_seconds"]
        .as_i64()
        .unwrap();
    assert!((86 * 60..88 * 60).contains(&held), "{doc:#}");
    let advice = r["summary"]["advice"].as_str().unwrap();
    assert!(
        advice.contains("run them under `locksmith run --wait 1h3"),
        "{advice}"
    );
    let (_, api, _) = serve.get("/api/v1/history");
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["repositories"][0]["holders"], r["holders"]);
    // /locks: the current holders in the same shape (and the verdict besides).
    let current = &serve.locks()["repositories"][0]["holders"][0];
    for k in keys {
        assert!(current.get(k).is_some(), "{k} in {current:#}");
    }

    let oldest = &restics()[0];
    let out = locksmith_cmd()
        .args(["history", "--state-dir", state.to_str().unwrap()])
        .env("RESTIC_BIN", &oldest.path)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(table.contains("bob@hostb  42   exclusive"), "{table}");
    assert!(
        table.contains("hostb: 1 exclusive hold, longest 1h2"),
        "{table}"
    );
    let fits = match oldest.at_least(16) {
        false => "has no --retry-lock (0.16 added it): run them under `locksmith run --wait 1h3",
        true => "give them --retry-lock 1h3",
    };
    assert!(
        table.contains(fits),
        "the advice fits the restic in use: {table}"
    );

    let nowhere = t.dir.path().join("nothing-here");
    let out = locksmith_cmd()
        .args(["history", "--state-dir", nowhere.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no history at"), "{}", text(&out));
    let out = locksmith_cmd()
        .args(["history", "--since", "7x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = locksmith_cmd()
        .args([
            "history",
            "--state-dir",
            state.to_str().unwrap(),
            "--name",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let name = r["name"].as_str().unwrap();
    let one = history(&state, &["--name", name]);
    assert_eq!(one["repositories"].as_array().unwrap().len(), 1);
    let (_, none, _) = serve.get("/api/v1/history?name=nope");
    assert!(none.contains("\"repositories\": []"), "{none}");
    let (bad, body, _) = serve.get("/api/v1/history?since=soon");
    assert_eq!(bad, 400, "{body}");
}

/// The page's timeline, laid out by a real browser: an SVG with a bar per job, exclusive
/// above shared, each labelled with its host and PID inside the drawing, stale marked.
#[test]
fn the_timeline_renders_in_headless_chromium() {
    crate::needs!("chromium");
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    t.seal(&exclusive(90, "hostb", 42), Encoding::Zstd);
    t.seal(&exclusive(1, "hostb", 42), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(50), "hostc", 7), Encoding::Zstd);
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    let (_, html, _) = serve.get("/");
    assert!(!html.contains("<script"), "no scripts on the page");
    // The test's own probe, after the page: what the browser laid out.
    let probe = r#"<script>
      const out = [...document.querySelectorAll('svg.timeline g.holder')].map(g => {
        const r = g.querySelector('rect').getBBox(), l = g.querySelector('text').getBBox();
        const svg = g.ownerSVGElement.viewBox.baseVal;
        return [g.querySelector('rect').getAttribute('class'), g.querySelector('text').textContent,
                r.width > 1 && r.height > 5, l.x >= 0 && l.x + l.width <= svg.width + 1, Math.round(r.y)].join('|');
      });
      document.title = 'LAID OUT ' + out.join(';');
    </script>"#;
    let file = t.dir.path().join("page.html");
    std::fs::write(&file, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("file://{}", file.display()));
    let out = run_within(&mut c, 60);
    assert!(out.status.success(), "{}", text(&out));
    let dom = String::from_utf8_lossy(&out.stdout);
    let title = dom
        .split("<title>")
        .nth(1)
        .unwrap()
        .split("</title>")
        .next()
        .unwrap();
    let bars: Vec<Vec<&str>> = title
        .trim_start_matches("LAID OUT ")
        .split(';')
        .map(|b| b.split('|').collect())
        .collect();
    assert_eq!(bars.len(), 2, "{title}");
    assert_eq!(
        bars[0][..4],
        ["bar exclusive ", "hostb 42", "true", "true"],
        "{title}"
    );
    assert_eq!(
        bars[1][..4],
        ["bar shared stale", "hostc 7", "true", "true"],
        "{title}"
    );
    let y = |b: &Vec<&str>| b[4].parse::<i64>().unwrap();
    assert!(y(&bars[0]) < y(&bars[1]), "exclusive above shared: {title}");
}

/// `since=7é` panicked (the age was split at a byte, inside the `é`): the HTTP request got
/// no answer, the raw value reached the log, and `locksmith_http_connections` never came
/// back down; the CLI exited 101. Now: 400 and exit 2 with the usual message, the gauge
/// back to where it was.
#[test]
fn since_7e_acute_is_a_bad_age_not_a_panic() {
    let out = locksmith_cmd()
        .args(["history", "--since", "7é"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("a number and a unit"), "{}", text(&out));
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let serve = crate::serve::serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    let before = serve.metrics().process("locksmith_http_connections");
    for _ in 0..3 {
        let (status, body, _) = serve.get("/api/v1/history?since=7%C3%A9");
        assert_eq!(status, 400, "{body}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The metrics request itself is one open connection, as it was before.
    assert_eq!(
        serve.metrics().process("locksmith_http_connections"),
        before
    );
    assert!(!serve.log().contains("panicked"), "{}", serve.log());
}

/// `lives` ended jobs over the last day under `hosts` host names, written into the
/// history's first repository with Python's sqlite3 (as a long-running fleet leaves them).
fn fill_history(db: &Path, lives: usize, hosts: usize) {
    let script = format!(
        r#"
import sqlite3, time
c = sqlite3.connect({db:?}, timeout=30)
repo = c.execute("SELECT id FROM repositories ORDER BY id LIMIT 1").fetchone()[0]
now = int(time.time())
rows = []
for i in range({lives}):
    start = now - 86000 + i * 86000 // {lives}
    rows.append((repo, "host%d" % (i % {hosts}), "root", 1000 + i, 1, 0, start, start,
                 start + 60, start + 60, "gone", None, 0, "%064x" % i))
c.executemany("INSERT INTO holders (repo, hostname, username, pid, exclusive, earlier,"
    " first_seen, held_since, last_seen, ended_at, ended, worst, stale, lock_ids)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
c.commit()
"#,
        db = db.to_str().unwrap()
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The threads of process `pid`.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// 800 page requests that closed at once took serve to 517 threads: each waited on the
/// history's reader in a blocking thread that outlived its request. The repository's
/// refresh then missed its deadline and the agent endpoint stopped answering. And one
/// `/api/v1/history` answer held 150,000 jobs (54 MiB), for any client that never read
/// it. Now client reads wait without a thread, one at a time, are abandoned with their
/// request, hold at most `limit` lives each, and keep their slot until they are sent.
#[test]
fn dropped_history_requests_leave_the_blocking_pool_and_the_agent_alone() {
    use std::io::Write;
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    fill_history(&state.join("history.sqlite"), 150_000, 20_000);
    let pid = serve.child.as_ref().unwrap().id();
    let before = threads(pid);
    let mut most = before;
    for path in ["/", "/api/v1/history?since=30d&limit=5000"] {
        for _ in 0..400 {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
            let _ = write!(c, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            drop(c);
        }
        most = most.max(threads(pid));
    }
    for _ in 0..20 {
        most = most.max(threads(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(most <= before + 8, "{before} threads, then {most}");
    let (status, _, took) = serve.get("/api/v1/host?pid=1");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(2),
        "the agent answered in {took:?}"
    );
    let read_at = serve.locks()["repositories"][0]["refreshed_at"].clone();
    serve.wait_for(10, "a refresh after the flood", |doc| {
        doc["repositories"][0]["refreshed_at"] != read_at
    });
    // One answer is bounded by its limit, and says what it left out.
    let (status, body, _) = serve.get("/api/v1/history?since=30d&limit=5000");
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let repo = &doc["repositories"][0];
    assert_eq!(repo["holders"].as_array().unwrap().len(), 5000);
    assert_eq!(repo["omitted"], 150_000 - 5000);
    let hosts = repo["summary"]["hosts"].as_array().unwrap().len();
    assert_eq!(hosts, locksmith::history::summary::MAX_HOSTS);
    assert!(repo["summary"]["hosts_omitted"].as_u64().unwrap() > 0);
    let (status, _, _) = serve.get("/api/v1/history?limit=5001");
    assert_eq!(status, 400);
}

/// serve with `--state-dir state` over `t`: its exit within 10 s, for one that refuses.
fn serve_refusing(t: &TestRepo, state: &Path) -> std::process::Output {
    let pw = crate::serve::password_file(t.dir.path(), "pw", PASSWORD);
    let mut c = t.locksmith();
    c.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", crate::services::free_port()),
    ])
    .args([
        "--state-dir",
        state.to_str().unwrap(),
        "-p",
        pw.to_str().unwrap(),
    ])
    .env_remove("RESTIC_PASSWORD");
    run_within(&mut c, 10)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A state directory made beforehand with 0755 (`install -d`, a Docker volume) got a
/// 0644 history any local user could read. Now every file of the history is 0600.
#[test]
fn a_state_directory_made_0755_gets_owner_only_files() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let st = Command::new("install")
        .args(["-d", "-m", "0755"])
        .arg(&state)
        .status();
    assert!(st.unwrap().success());
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    for name in ["history.sqlite", "history.sqlite-wal", "history.sqlite-shm"] {
        assert_eq!(mode(&state.join(name)), 0o600, "{name}");
    }
}

/// A state directory others can write, or another user's, was used as found; a link
/// planted as `history.sqlite` was followed (root's serve wrote its tables into another
/// program's database and switched it to WAL). Each is now refused, exit 2, saying why.
#[test]
fn a_state_directory_not_ours_or_open_to_others_or_a_planted_link_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestRepo::new(2);
    let open = t.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = serve_refusing(&t, &open);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("writable by group or others"),
        "{}",
        text(&out)
    );
    assert!(!open.join("history.sqlite").exists());

    let planted = t.dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    let victim = t.dir.path().join("victim.db");
    std::fs::write(&victim, b"another program's data").unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("history.sqlite")).unwrap();
    let out = serve_refusing(&t, &planted);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"another program's data");
    assert!(!t.dir.path().join("victim.db-wal").exists());

    if !is_root() {
        return skip("a directory of another user's is made by root");
    }
    let theirs = t.dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let (uid, gid) = ensure_user("locksmith-test");
    std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).unwrap();
    let out = serve_refusing(&t, &theirs);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("owned by user {uid}")),
        "{}",
        text(&out)
    );
}

/// Random bytes, or a history cut in half, made serve exit 2 (and restart every 10 s
/// under the unit, forever). Now the damaged file is moved aside, a new history starts,
/// the log says so and `locksmith_history_set_aside_total` counts it.
#[test]
fn a_damaged_history_is_set_aside_and_serve_starts_afresh() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let db = state.join("history.sqlite");
    let mut serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    fill_history(&db, 5000, 5);
    serve.stop();
    let whole = std::fs::read(&db).unwrap();
    let damages: [(&str, Vec<u8>); 2] = [
        (
            "random bytes",
            (0..65536u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("cut in half", whole[..whole.len() / 2].to_vec()),
    ];
    for (what, bytes) in damages {
        for f in std::fs::read_dir(&state).unwrap() {
            let p = f.unwrap().path();
            if p.to_string_lossy().contains("damaged") || p.extension() != Some("sqlite".as_ref()) {
                let _ = std::fs::remove_file(p);
            }
        }
        std::fs::write(&db, &bytes).unwrap();
        let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
        serve.wait_settled(&[]);
        assert!(
            serve.log().contains("history was damaged: moved to"),
            "{what}: {}",
            serve.log()
        );
        let m = serve.metrics();
        assert_eq!(
            m.process("locksmith_history_set_aside_total"),
            1.0,
            "{what}"
        );
        let aside: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("history.sqlite.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{what}: {aside:?}");
        assert_eq!(
            std::fs::read(state.join(&aside[0])).unwrap(),
            bytes,
            "{what}"
        );
        let (status, body, _) = serve.get("/api/v1/history");
        assert_eq!(status, 200, "{what}: {body}");
    }
}

/// Two serves on one state directory both wrote, and every job was counted twice. The
/// second now refuses, exit 2, naming the first.
#[test]
fn a_second_serve_on_one_state_directory_refuses() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let first = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    first.wait_settled(&[]);
    let out = serve_refusing(&t, &state);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let pid = first.child.as_ref().unwrap().id();
    assert!(
        text(&out).contains(&format!("another locksmith serve (PID {pid})")),
        "{}",
        text(&out)
    );
}

/// The history was locked by another program for 8 s while a job ended: the write of
/// that change failed, was never tried again, and the job stayed "held" forever (its
/// hold, and the `--retry-lock` advice, growing without end). Unwritten changes are now
/// kept and written with the next write.
#[test]
fn a_change_whose_write_failed_is_written_with_the_next() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let db = state.join("history.sqlite");
    let job = t.seal(&exclusive(1, "hostb", 42), Encoding::Json);
    let serve = serve_one(&t, &["--state-dir", state.to_str().unwrap()]);
    serve.wait_settled(&[]);
    let ended = || lives(&history(&state, &["--since", "1h"]))[0].1.clone();
    assert_eq!(ended(), Value::Null, "held");
    // Another program holds the write lock for 8 s (serve waits 5 s, then gives up).
    let script = format!(
        "import sqlite3, time\nc = sqlite3.connect({:?}, isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(8)\nc.execute('COMMIT')\n",
        db.to_str().unwrap()
    );
    let mut locker = Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(locker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    remove_lock(&t, &job);
    assert!(locker.wait().unwrap().success());
    assert!(
        serve.log().contains("history not written"),
        "{}",
        serve.log()
    );
    let start = Instant::now();
    while ended() == Value::Null {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the job's end was lost"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(ended(), "gone");
}

/// `--history-size` held only at start and hourly: 200 new holders a second under a
/// 1 MiB bound reached 6.8 MiB in 50 s. It now holds after every write, the write-ahead
/// log included (within a small factor: the log is folded in every quarter of it).
#[test]
fn the_size_bound_holds_after_every_write_not_hourly() {
    let t = TestRepo::new(2);
    let state = t.dir.path().join("state");
    let db = state.join("history.sqlite");
    let state_s = state.to_str().unwrap();
    let serve = serve_one(&t, &["--state-dir", state_s, "--history-size", "1MiB"]);
    serve.wait_settled(&[]);
    fill_history(&db, 40_000, 5);
    let on_disk = || {
        ["", "-wal"]
            .iter()
            .map(|s| std::fs::metadata(format!("{}{s}", db.display())).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    let filled = on_disk();
    assert!(filled > 4 << 20, "filled to {filled} bytes");
    let start = Instant::now();
    while on_disk() > 2 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} bytes on disk 10 s after {filled}, under a 1 MiB bound",
            on_disk()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
