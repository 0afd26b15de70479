//! scrypt's lanes within the memory budget, with a key of restic's calibrated size (N=2^15,
//! r=8: a V of 32 MiB per lane in flight): pairs on every thread by default, fewer lanes
//! under `--scrypt-memory`, and fewer under a cgroup's memory limit instead of an OOM kill.

use std::path::{Path, PathBuf};
use std::process::Command;

use locksmith::restic::kdf::KdfParams;

use crate::common::*;

/// A repository whose only key for its password is calibrated-sized, p=4.
fn calibrated_repo() -> TestRepo {
    let mut t = TestRepo::new(2);
    let params = KdfParams {
        n: 1 << 15,
        r: 8,
        p: 4,
    };
    let (id, bytes) = t
        .repo()
        .new_key_file("calibrated-pw", params, "it", "it-host")
        .unwrap();
    std::fs::write(t.path.join("keys").join(&id), bytes).unwrap();
    t.password = "calibrated-pw".into();
    t.key_hint = Some(id);
    t
}

/// `locks --json` on `t` with the SSE2 core paired, as a release build picks a paired
/// core here (a debug build times its unoptimised SIMD code slower than scalar).
fn locks_cmd(t: &TestRepo, extra: &[&str]) -> Command {
    let mut c = t.locksmith();
    c.args(["locks", "--json"])
        .args(extra)
        .env("LOCKSMITH_SCRYPT_CORE", "sse2")
        .env("LOCKSMITH_SCRYPT_PAIRS", "1");
    c
}

const MIB: u64 = 1024;

/// Pairs on both threads: 4 V (128 MiB) in flight; `--scrypt-memory 64MiB`: 2 V, under
/// 100 MiB in all. Both readings the same.
#[test]
fn the_lanes_memory_follows_the_budget() {
    if !cfg!(target_arch = "x86_64") || std::thread::available_parallelism().unwrap().get() < 2 {
        return skip("two x86-64 cores");
    }
    let t = calibrated_repo();
    let (code, paired) = peak_rss_kib(&locks_cmd(&t, &[]));
    assert_eq!(code, Some(0));
    let (code, lean) = peak_rss_kib(&locks_cmd(&t, &["--scrypt-memory", "64MiB"]));
    assert_eq!(code, Some(0));
    assert!(
        paired > 120 * MIB,
        "pairs on both threads: {} MiB",
        paired / MIB
    );
    assert!(lean < 100 * MIB, "64MiB budget: {} MiB", lean / MIB);
    let out = locks_cmd(&t, &["--scrypt-memory", "1k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("less than 1 MiB"), "{}", text(&out));
}

/// A memory cgroup of this machine's (v2, else v1) limited to `bytes`, removed on drop.
struct Cgroup {
    dir: PathBuf,
    procs: PathBuf,
}

impl Cgroup {
    fn limited(bytes: u64) -> Option<Cgroup> {
        let name = format!("locksmith-test-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        let v2_memory = std::fs::read_to_string(v2).is_ok_and(|c| c.contains("memory"));
        let (dir, limit) = if v2_memory {
            (Path::new("/sys/fs/cgroup").join(&name), "memory.max")
        } else {
            (
                Path::new("/sys/fs/cgroup/memory").join(&name),
                "memory.limit_in_bytes",
            )
        };
        std::fs::create_dir(&dir).ok()?;
        let cg = Cgroup {
            procs: dir.join("cgroup.procs"),
            dir,
        };
        std::fs::write(cg.dir.join(limit), bytes.to_string()).ok()?;
        if !v2_memory {
            // No swap to spill to: the limit is the limit.
            let _ = std::fs::write(
                cg.dir.join("memory.memsw.limit_in_bytes"),
                bytes.to_string(),
            );
        }
        Some(cg)
    }

    /// `cmd`, started inside the cgroup.
    fn wrap(&self, cmd: &Command) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("echo $$ > {} && exec \"$@\"", self.procs.display()))
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Under a 120 MiB limit the default budget's 4 V (128 MiB) would be OOM-killed: the
/// limit lowers the lanes in flight and the reading completes.
#[test]
fn a_cgroup_memory_limit_puts_fewer_lanes_in_flight() {
    if !is_root() {
        return skip("root (to make a memory cgroup)");
    }
    let t = calibrated_repo();
    let Some(cg) = Cgroup::limited(120 << 20) else {
        return skip("a writable memory cgroup");
    };
    let (code, peak) = peak_rss_kib(&cg.wrap(&locks_cmd(&t, &[])));
    assert_eq!(
        code,
        Some(0),
        "killed under the limit (peak {} MiB)",
        peak / MIB
    );
    assert!(peak < 120 * MIB, "{} MiB", peak / MIB);
    let report: serde_json::Value =
        serde_json::from_slice(&cg.wrap(&locks_cmd(&t, &[])).output().unwrap().stdout).unwrap();
    assert_eq!(report["repository_version"], 2);
}
