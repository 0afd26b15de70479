//! Hostile repositories and servers: what a probe found, each test named after what broke.
//! Where restic decides (what it loads, removes or signals), real restic runs.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::services::*;

const P32: i64 = 1 << 32;

/// A PID of 2^32 + P: Go hands it to kill(2) (or pidfd_open(2)) and the kernel keeps the
/// low 32 bits, so restic's SIGHUP lands on P. locksmith called it "gone — removes".
#[test]
fn pid_beyond_32_bits_gets_restics_sighup_on_the_truncated_pid() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let mut bystander = Command::new("sleep").arg("120").spawn().unwrap();
        let p = i64::from(bystander.id());
        let id = t.seal(
            &lock_at(minutes_ago(1), &this_host(), P32 + p),
            Encoding::Zstd,
        );
        let report = t.locks_json();
        let l = &by_id(&report)[&id];
        assert_eq!(l["holder"], "gone", "{l}");
        assert_eq!(l["restic_unlock_removes"], false, "{l}");
        assert_eq!(l["unsafe"], true, "{l}");
        assert_eq!(l["holder_command"], "sleep", "{l}");
        let reason = l["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("to PID {p}")), "{reason}");
        assert!(l["safe_after"].is_string(), "{l}");

        t.restic_ok(&["unlock"]);
        let status = bystander.wait().unwrap();
        assert_eq!(status.signal(), Some(1), "{r}'s probe hit PID {p}");
        assert_eq!(t.lock_names(), vec![id], "and {r} kept the lock");
    }
}

/// Runs `restic unlock` inside a throwaway PID namespace beside a `sleep` of the same
/// process group, on a lock whose PID restic's probe turns into kill(0) or kill(−1): on
/// the host, kill(−1, SIGHUP) as root would reach every process of the machine. Returns
/// (restic's exit, how the sleep ended).
fn restic_unlock_in_pid_namespace(t: &TestRepo) -> Option<(String, String)> {
    if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
        skip("restic's probe in a private PID namespace needs root and unshare (util-linux)");
        return None;
    }
    let script = r#"sleep 60 & s=$!
"$RESTIC" unlock >/dev/null 2>&1; r=$?
sleep 0.5; kill -0 $s 2>/dev/null && { kill $s; echo "restic=$r sleep=alive"; exit 0; }
wait $s; echo "restic=$r sleep=$?""#;
    let like = t.restic();
    let mut c = Command::new("unshare");
    for (k, v) in like.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    // Process groups span PID namespaces: kill(0) would reach this test's own group (the
    // test harness itself died of it) without a group of its own.
    let out = c
        .process_group(0)
        .env("RESTIC", t.restic_path())
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (r, s) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("{}", text(&out)));
    Some((r.to_string(), s.to_string()))
}

/// 2^32 − 1 becomes kill(−1, SIGHUP): every process restic may signal. 2^32 becomes
/// kill(0, SIGHUP): restic's own process group. restic keeps the lock either way.
#[test]
fn pid_two_to_the_32_signals_restics_group_and_minus_one_signals_everyone() {
    crate::needs!("restic");
    for r in restics() {
        for (pid, words) in [(P32 - 1, "EVERY process"), (P32, "own process group")] {
            let t = TestRepo::new(2).with(r);
            let id = t.seal(&lock_at(minutes_ago(1), &this_host(), pid), Encoding::Json);
            let report = t.locks_json();
            let l = &by_id(&report)[&id];
            assert_eq!(l["unsafe"], true, "{l}");
            assert_eq!(l["restic_unlock_removes"], false, "{l}");
            assert!(l["reason"].as_str().unwrap().contains(words), "{l}");
            let Some((restic, sleep)) = restic_unlock_in_pid_namespace(&t) else {
                return;
            };
            // A shell reports a child killed by SIGHUP as 128 + 1.
            assert_eq!(sleep, "sleep=129", "{r}, pid {pid}: {restic} {sleep}");
            assert_eq!(
                restic, "restic=0",
                "{r}, pid {pid}: restic survives its SIGHUP"
            );
            assert_eq!(t.lock_names(), vec![id], "{r}, pid {pid}: the lock is kept");
        }
    }
}

/// A FIFO as `config` hung the local backend for ever (open(2) waits for a writer).
#[test]
fn fifo_as_config_or_lock_never_hangs() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let fifo = |path: &std::path::Path| {
        let st = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(st.success());
    };
    std::fs::create_dir_all(t.locks_dir()).unwrap();
    fifo(&t.locks_dir().join("a".repeat(64)));
    let out = run_within(t.locksmith().args(["locks", "--json"]), 30);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ignored"][0]["reason"], "not_a_file", "{report}");

    std::fs::remove_file(t.path.join("config")).unwrap();
    fifo(&t.path.join("config"));
    let out = run_within(t.locksmith().args(["locks"]), 30);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a regular file"), "{}", text(&out));
}

/// The lock file swapped for a FIFO between listing and reading: the read opens without
/// blocking and finds no regular file.
#[test]
fn lock_swapped_for_a_fifo_after_listing_is_not_read() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let dir = t.dir.path().join("fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("mkfifo").arg(dir.join("x")).status().unwrap();
    assert!(st.success());
    let b = locksmith::backend::LocalBackend::new(&t.path);
    std::fs::create_dir_all(t.locks_dir()).unwrap();
    std::fs::rename(dir.join("x"), t.locks_dir().join("b".repeat(64))).unwrap();
    let start = Instant::now();
    let got = rt().block_on(locksmith::backend::Backend::read(
        &b,
        locksmith::backend::Dir::Locks,
        &"b".repeat(64),
        1024,
    ));
    assert!(matches!(
        got,
        Err(locksmith::backend::BackendError::NotAFile)
    ));
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Escape sequences and newlines in names and host names rewrote the header and forged an
/// "unsafe to unlock" section.
#[test]
fn control_characters_from_the_repository_never_reach_the_terminal() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let forged = "evil\u{1b}]0;pwned\u{7}\nunsafe to unlock with restic:\n  deadbeef  forged";
    let id = t.seal(&lock_at(minutes_ago(50), forged, 7), Encoding::Zstd);
    t.write_lock_file("x\u{1b}[2J\nunsafe to unlock with restic:", b"junk");
    let out = t.locksmith().arg("locks").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table:?}"
    );
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("unsafe to unlock") || l.starts_with("  deadbeef")),
        "{table}"
    );
    // JSON stays exact.
    assert_eq!(by_id(&t.locks_json())[&id]["hostname"], forged);
}

/// `short()` sliced bytes: a config ID with a non-ASCII character (restic reads such a
/// config) panicked the table.
#[test]
fn non_ascii_config_id_does_not_panic_the_table() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let config = serde_json::json!({"version": 2, "id": "ééééééééé", "chunker_polynomial": "3da3358b4dc173"});
    let (_, sealed) = t.repo().seal_plaintext(config.to_string().as_bytes());
    std::fs::write(t.path.join("config"), sealed).unwrap();
    let listed = t
        .restic()
        .args(["--no-lock", "cat", "config"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "restic reads it: {}",
        text(&listed)
    );
    let out = t.locksmith().arg("locks").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("id éééééééé "));
}

/// chrono took these times; Go's parser does not, so restic cannot load the lock (0.14's
/// unlock skips it), while locksmith predicted "removes".
#[test]
fn lock_times_restic_cannot_load_are_unreadable_and_restic_agrees() {
    crate::needs!("restic");
    for r in restics() {
        lock_times_with(r);
    }
}

fn lock_times_with(r: &Restic) {
    let t = TestRepo::new(2).with(r);
    let host = this_host();
    let json = |time: &str| {
        format!(
            r#"{{"time":"{time}","exclusive":false,"hostname":"{host}","username":"x","pid":{}}}"#,
            dead_pid()
        )
    };
    let mut bad = Vec::new();
    for time in [
        "2020-01-01T10:00:60Z",
        "2020-01-01 10:00:00Z",
        "2020-01-01t10:00:00Z",
        "2020-01-01T10:00:00z",
    ] {
        let (id, bytes) = t.repo().seal_plaintext(json(time).as_bytes());
        t.write_lock_file(&id, &bytes);
        bad.push(id);
    }
    // Go takes a one-digit hour and a comma: these load, and restic removes the old one.
    let (lenient, bytes) = t
        .repo()
        .seal_plaintext(json("2020-01-01T9:00:00,5Z").as_bytes());
    t.write_lock_file(&lenient, &bytes);
    let report = t.locks_json();
    for id in &bad {
        let u = report["unreadable"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == *id);
        assert_eq!(
            u.map(|u| u["kind"].clone()),
            Some("bad_time".into()),
            "{report:#}"
        );
        let cat = t
            .restic()
            .args(["--no-lock", "cat", "lock", id])
            .output()
            .unwrap();
        assert!(!cat.status.success(), "{r} loaded {id}: {}", text(&cat));
    }
    let l = &by_id(&report)[&lenient];
    assert_eq!(l["restic_unlock_removes"], true, "{l}");
    assert_same_lock(l, &t.cat_lock(&lenient));
    t.restic_ok(&["unlock"]);
    let mut kept = bad.clone();
    kept.sort();
    assert_eq!(
        t.lock_names(),
        kept,
        "{r} removes the lenient one, skips the rest"
    );
}

/// A key file with a huge p took gigabytes and minutes before the MAC said "not this key".
#[test]
fn key_file_with_huge_scrypt_p_is_refused_before_allocating() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let keys = t.path.join("keys");
    let real = std::fs::read_dir(&keys)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut key: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    key["N"] = 2.into();
    key["r"] = 1.into();
    key["p"] = u32::MAX.into();
    let hostile = serde_json::to_vec(&key).unwrap();
    std::fs::write(keys.join(locksmith::seal::id_of(&hostile)), &hostile).unwrap();
    let start = Instant::now();
    let out = run_within(
        t.locksmith()
            .args(["locks", "--json"])
            .env("RESTIC_KEY_HINT", ""),
        60,
    );
    assert!(
        out.status.success(),
        "the real key still opens: {}",
        text(&out)
    );
    let out = run_within(
        t.locksmith().arg("locks").env("RESTIC_PASSWORD", "wrong"),
        60,
    );
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    assert!(
        text(&out).contains("beyond any key restic"),
        "{}",
        text(&out)
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// Every body up to 64 KiB was kept until decoding: memory grew with the entries. The
/// peak is measured at 300 and at 3,000 such entries: the 2,700 more (169 MiB of bodies)
/// must not show in it.
#[test]
fn memory_does_not_grow_with_large_unreadable_entries() {
    crate::needs!("restic");
    let peak_with = |entries: u32| {
        let t = TestRepo::new(2);
        std::fs::create_dir_all(t.locks_dir()).unwrap();
        let junk = vec![0x5au8; 64 << 10];
        for i in 0..entries {
            // Names are IDs (so they are read), contents junk (so they are unreadable).
            let name = format!("{:064x}", u64::from(i) + 1);
            std::fs::write(t.locks_dir().join(name), &junk).unwrap();
        }
        let mut cmd = t.locksmith();
        cmd.args(["locks", "--json"]);
        let (code, max_rss_kib) = peak_rss_kib(&cmd);
        assert_eq!(code, Some(0));
        max_rss_kib >> 10
    };
    let (few, many) = (peak_with(300), peak_with(3000));
    // Measured here: about 30 MiB both (the figure is this program's alone).
    assert!(
        many < few + 24,
        "peak RSS {few} MiB with 300 entries, {many} MiB with 3,000"
    );
}

/// A server that trickles each lock file cost up to 5 attempts × --timeout per read: 100
/// locks took 106 s at --timeout 5. The deadline bounds the whole run and says what was
/// not read; the minimum rate gives up on trickles.
#[test]
fn trickling_server_is_bounded_by_the_deadline() {
    crate::needs!("restic", "rclone");
    let t = TestRepo::new(2);
    for i in 0..100 {
        t.seal(
            &lock_at(minutes_ago(3), &format!("h{i}"), i),
            Encoding::Zstd,
        );
    }
    let srv = RestServer::start(t.dir.path(), None, None);
    let proxy = TestServer::proxy(srv.port);
    proxy.set_fault(Fault::Trickle);
    let start = Instant::now();
    let out = t
        .locksmith()
        .env(
            "RESTIC_REPOSITORY",
            format!("rest:http://127.0.0.1:{}/repo/", proxy.port),
        )
        .args(["locks", "--json", "--timeout", "5", "--deadline", "15"])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let not_read = report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["kind"] == "not_read")
        .count();
    assert!(not_read > 0, "{report:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{not_read} of the entries")),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(40), "took {took:?}");
}

/// What an unreadable lock does depends on the restic: 0.14 skips it, 0.15 and later fail
/// every command that takes a lock. The report says so, and each restic behaves so.
#[test]
fn unreadable_lock_blocks_restic_from_015_and_the_report_says_so() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let junk = vec![0x42u8; 150];
        t.write_lock_file(&locksmith::seal::id_of(&junk), &junk);
        let report = t.locks_json();
        let effect = report["unreadable"][0]["restic_effect"].as_str().unwrap();
        assert!(
            effect.contains("0.15 and later fail every command"),
            "{effect}"
        );
        let mut backup = t
            .restic()
            .args(["backup", "--stdin", "--stdin-filename", "f"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        backup.stdin.take().unwrap().write_all(b"data\n").unwrap();
        let out = backup.wait_with_output().unwrap();
        let want = if r.at_least(15) { Some(1) } else { Some(0) };
        assert_eq!(out.status.code(), want, "{r}: {}", text(&out));
        t.restic_ok(&["unlock"]);
        assert_eq!(t.lock_names().len(), 1, "{r}: restic unlock keeps it");
    }
}

/// Lock contents were capped per file but not per field: 40 lock files of 7,880 bytes in
/// all (zstd) added 289 MB of RSS and made a 39 MB /metrics of 700 KB label values. Names
/// are cut to 255 bytes (and counted) in every output, and a plaintext over 64 KiB is not
/// a lock.
#[test]
fn huge_names_are_cut_in_every_output() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    for i in 0..40 {
        let mut lock = lock_at(minutes_ago(2), &format!("{i}{}", "h".repeat(30_000)), i);
        lock.username = "u".repeat(30_000);
        t.seal(&lock, Encoding::Zstd);
    }
    let mut bomb = lock_at(minutes_ago(2), &"b".repeat(700_000), 1);
    bomb.username = "x".into();
    t.seal(&bomb, Encoding::Zstd);
    let textfile = t.dir.path().join("locks.prom");
    let mut cmd = t.locksmith();
    cmd.args(["locks", "--json", "--textfile"]).arg(&textfile);
    let (code, peak) = peak_rss_kib(&cmd);
    assert_eq!(code, Some(0));
    assert!(peak < 64 << 10, "peak RSS {} MiB", peak >> 10);
    let report = t.locks_json();
    assert_eq!(report["counts"]["total"], 40);
    assert_eq!(report["counts"]["names_cut"], 40);
    assert_eq!(
        report["unreadable"][0]["kind"], "too_large",
        "{:#}",
        report["unreadable"]
    );
    for l in report["locks"].as_array().unwrap() {
        for field in ["hostname", "username"] {
            let name = l[field].as_str().unwrap();
            assert!(
                name.len() <= 255 + "…[cut]".len() && name.ends_with("…[cut]"),
                "{field}"
            );
        }
    }
    let metrics = std::fs::read_to_string(&textfile).unwrap();
    let longest = metrics.lines().map(str::len).max().unwrap();
    assert!(longest < 1000, "a line of {longest} bytes");
    let table = t.locksmith().arg("locks").output().unwrap();
    let longest = String::from_utf8_lossy(&table.stdout)
        .lines()
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest < 1000, "a table line of {longest} bytes");
}

/// U+061C, U+200B, U+2060, U+FEFF and U+00AD passed unescaped: `node\u200b1` looked like
/// `node1` in the table, yet is judged another host. The table escapes them; JSON keeps
/// the name exact.
#[test]
fn invisible_characters_in_host_names_are_shown() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    for c in ['\u{61c}', '\u{200b}', '\u{2060}', '\u{feff}', '\u{ad}'] {
        t.seal(
            &lock_at(minutes_ago(1), &format!("node{c}1"), 7),
            Encoding::Zstd,
        );
    }
    let table = String::from_utf8(t.locksmith().arg("locks").output().unwrap().stdout).unwrap();
    for shown in [
        "node\\u{61c}1",
        "node\\u{200b}1",
        "node\\u{2060}1",
        "node\\u{feff}1",
        "node\\u{ad}1",
    ] {
        assert!(table.contains(shown), "{shown} in\n{table}");
    }
    let json = t.locks_json();
    let hosts: Vec<&str> = json["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["hostname"].as_str().unwrap())
        .collect();
    assert!(hosts.contains(&"node\u{200b}1"), "{hosts:?}");
}
