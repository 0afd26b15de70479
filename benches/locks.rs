//! Per-lock cost (envelope open, decompress, parse) and key derivation.

use criterion::{Criterion, criterion_group, criterion_main};
use locksmith::locks::{Lock, LockDecoder};
use locksmith::restic::envelope::Key;
use locksmith::restic::kdf::KdfParams;
use locksmith::seal::{id_of, zstd_frame};

/// As the binary does, so that key derivation is timed as locksmith runs it.
#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

fn sample_lock() -> Lock {
    Lock::from_go_json(
        br#"{"time":"2026-11-24T15:35:40.37577364Z","exclusive":false,"hostname":"backup-node","username":"backup","pid":13202,"uid":1234,"gid":1234}"#,
    )
    .unwrap()
}

fn key() -> Key {
    Key::from_kdf_output(&[7u8; 64])
}

fn per_lock(c: &mut Criterion) {
    let k = key();
    let json = serde_json::to_vec(&sample_lock()).unwrap();
    let v1 = k.seal(&json);
    let v1_id = id_of(&v1);
    let v2 = k.seal(&[&[2u8][..], &zstd_frame(&json)].concat());
    let v2_id = id_of(&v2);
    let mut d1 = LockDecoder::new(&k, 1);
    c.bench_function("decode lock v1 (json)", |b| {
        b.iter(|| d1.decode(&v1_id, &v1).unwrap())
    });
    let mut d2 = LockDecoder::new(&k, 2);
    c.bench_function("decode lock v2 (zstd)", |b| {
        b.iter(|| d2.decode(&v2_id, &v2).unwrap())
    });
}

fn kdf(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrypt N=32768 r=8");
    g.sample_size(10);
    for p in [1, 2, 6] {
        let params = KdfParams { n: 32768, r: 8, p };
        g.bench_function(format!("p={p}"), |b| {
            b.iter(|| params.derive(b"password", &[1u8; 64]).unwrap())
        });
    }
    g.finish();
    // One lane on one thread, each core this CPU runs, and the `scrypt` crate.
    let mut g = c.benchmark_group("one lane N=32768 r=8");
    g.sample_size(10);
    // `p` lanes of N=32768, r=8, paired where a thread runs two and `pairs` allows it.
    let lanes = |core, pairs, p| {
        let mut out = [0u8; 64];
        let (pw, salt) = (b"password", &[1u8; 64]);
        locksmith::restic::scrypt::scrypt_with(core, pairs, pw, salt, 32768, 8, p, &mut out);
        out
    };
    for core in locksmith::restic::scrypt::Core::available() {
        g.bench_function(core.name(), |b| b.iter(|| lanes(core, false, 1)));
    }
    // Two lanes on one thread, interleaved where the core pairs them: a single-CPU
    // machine's way (compare with twice the lane above).
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for core in locksmith::restic::scrypt::Core::available() {
        g.bench_function(format!("two lanes, one thread, {}", core.name()), |b| {
            b.iter(|| one_thread.install(|| lanes(core, true, 2)))
        });
    }
    g.bench_function("scrypt crate", |b| {
        let params = scrypt::Params::new(15, 8, 1).unwrap();
        b.iter(|| {
            let mut out = [0u8; 64];
            scrypt::scrypt(b"password", &[1u8; 64], &params, &mut out).unwrap();
            out
        })
    });
    g.finish();
}

/// `serve`'s refresh of a repository whose 1,000 locks have all been read before: one
/// listing of `locks/`, no reads, every lock judged again (PID probes included).
fn unchanged_refresh(c: &mut Criterion) {
    use locksmith::config::RawRepoOptions;
    use locksmith::secret::Secret;
    use locksmith::watch::Watch;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    copy_dir(&root.join("repo-v2"), &repo);
    let read = |f: &str| {
        std::fs::read_to_string(root.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let options = RawRepoOptions {
        repo: Some(repo.to_str().unwrap().into()),
        password: Some(Secret::new(read("password.txt"))),
        key_hint: Some(read("repo-v2.lowkey")),
        ..Default::default()
    };
    let rt = locksmith::runtime();
    let opened = rt
        .block_on(locksmith::open(&options.resolve().unwrap()))
        .unwrap();
    std::fs::remove_dir_all(repo.join("locks")).unwrap();
    std::fs::create_dir_all(repo.join("locks")).unwrap();
    let mut lock = sample_lock();
    lock.time = chrono::Utc::now().into();
    for pid in 0..1000 {
        lock.pid = 100_000 + pid;
        let (id, bytes) = opened.seal_lock(&lock, locksmith::seal::Encoding::Zstd);
        std::fs::write(repo.join("locks").join(id), bytes).unwrap();
    }
    let host = locksmith::process::ThisHost::new();
    let mut watch = Watch::new(options, None);
    let first = rt.block_on(watch.refresh(&host)).unwrap();
    assert_eq!(first.counts.total, 1000);
    let read_before = watch.costs.lock_files_read;
    c.bench_function("serve refresh, 1000 unchanged locks", |b| {
        b.iter(|| rt.block_on(watch.refresh(&host)).unwrap())
    });
    // As serve's loop does it with a history: the refresh, then what changed recorded.
    let state = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(std::sync::Mutex::new(
        locksmith::history::Store::open(state.path()).unwrap(),
    ));
    let (mut recorder, _) = locksmith::history::Recorder::open(store, "bench").unwrap();
    c.bench_function("serve refresh with history, 1000 unchanged locks", |b| {
        b.iter(|| {
            let report = rt.block_on(watch.refresh(&host)).unwrap();
            let changes = watch.take_changes();
            recorder
                .good(&report, &changes, chrono::Utc::now())
                .unwrap();
        })
    });
    assert_eq!(
        watch.costs.lock_files_read, read_before,
        "nothing read again"
    );
    assert_eq!(watch.costs.key_derivations, 1);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The history's size for 1,000 jobs, each seen begin and end (one lock file each, as a
/// backup run leaves): printed, not timed.
fn history_growth(_: &mut Criterion) {
    use locksmith::report::{Memory, Report};
    let state = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(std::sync::Mutex::new(
        locksmith::history::Store::open(state.path()).unwrap(),
    ));
    let (mut recorder, _) = locksmith::history::Recorder::open(store.clone(), "bench").unwrap();
    let host = locksmith::process::ThisHost::new();
    let mut memory = Memory::default();
    // The database file once the write-ahead log is folded in (the retention does that).
    let size = || {
        let keep = locksmith::history::Retention::default();
        store
            .lock()
            .unwrap()
            .prune(keep, chrono::Utc::now())
            .unwrap();
        let db = state.path().join(locksmith::history::FILE_NAME);
        std::fs::metadata(&db).unwrap().len()
    };
    let mut lock = sample_lock();
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let mut record = |n: i64, with_lock: bool| {
        let now = start + chrono::Duration::minutes(n);
        let mut inv = locksmith::locks::Inventory::default();
        if with_lock {
            lock.pid = 10_000 + n;
            lock.time = now.into();
            inv.locks.push(locksmith::locks::LockEntry {
                id: format!("{n:064x}"),
                lock: lock.clone(),
                stored_at: None,
            });
        }
        let mut report = Report::new("/r", "id", 2, inv, now, &host);
        let changes = memory.update(&mut report, now);
        recorder.good(&report, &changes, now).unwrap();
    };
    record(0, false);
    let before = size();
    for n in 0..1000 {
        record(2 * n + 1, true);
        record(2 * n + 2, false);
    }
    let grown = size().saturating_sub(before);
    eprintln!("history growth: {grown} bytes for 1000 jobs");
}

/// The kernel read's cost: 1,000 locks of this host's name whose PIDs are free (each
/// verdict then looks for the holder in other PID namespaces) on a host with 2,000
/// processes, judged with the kernel read once and without it (the judgement before it
/// existed). Printed as medians of 9, not timed by criterion.
fn kernel_read(_: &mut Criterion) {
    use locksmith::kernel::Kernel;
    use locksmith::process::{HostView, PidState, ThisHost};
    use locksmith::report::Report;
    /// This host without its kernel: every PID probed directly, nothing else read.
    struct Blind(ThisHost);
    impl HostView for Blind {
        fn hostname(&self) -> &str {
            self.0.hostname()
        }
        fn probe(&self, pid: i32) -> PidState {
            self.0.probe(pid)
        }
        fn probe_group(&self, g: i32) -> PidState {
            self.0.probe_group(g)
        }
        fn started(&self, pid: i32) -> Option<chrono::DateTime<chrono::Utc>> {
            self.0.started(pid)
        }
        fn command(&self, pid: i32) -> Option<String> {
            self.0.command(pid)
        }
        fn read_kernel(&self, _: &std::collections::BTreeSet<i32>, _: bool) -> Kernel {
            Kernel::default()
        }
    }
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count()
    };
    let mut sleepers: Vec<std::process::Child> = (count()..2000)
        .map(|_| {
            std::process::Command::new("sleep")
                .arg("600")
                .spawn()
                .unwrap()
        })
        .collect();
    let host = ThisHost::new();
    let now = chrono::Utc::now();
    let mut lock = sample_lock();
    lock.hostname = host.hostname().to_string();
    lock.time = now.into();
    let lock = lock;
    let inventory = |hostname: &str| {
        let mut inv = locksmith::locks::Inventory::default();
        for n in 0..1000 {
            inv.locks.push(locksmith::locks::LockEntry {
                id: format!("{n:064x}"),
                lock: locksmith::locks::Lock {
                    pid: 40_000 + n,
                    hostname: hostname.to_string(),
                    ..lock.clone()
                },
                stored_at: None,
            });
        }
        inv
    };
    let median = |view: &dyn HostView, hostname: &str| {
        let mut ms: Vec<f64> = (0..9)
            .map(|_| {
                let inv = inventory(hostname);
                let t = std::time::Instant::now();
                let _ = Report::new("/r", "id", 2, inv, now, view);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[4]
    };
    let processes = count();
    let here = host.hostname().to_string();
    for (what, name) in [
        ("this host's name", here.as_str()),
        ("a container's name", "ctr-elsewhere"),
    ] {
        let without = median(&Blind(ThisHost::new()), name);
        let with = median(&host, name);
        eprintln!(
            "kernel read: 1000 locks of {what}, {processes} processes: {with:.1} ms judged with the kernel read, {without:.1} ms without (+{:.1} ms)",
            with - without
        );
    }
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
}

criterion_group!(
    benches,
    per_lock,
    kdf,
    unchanged_refresh,
    history_growth,
    kernel_read
);
criterion_main!(benches);
