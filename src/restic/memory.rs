//! How much memory scrypt's lanes may hold at once. Each lane in flight owns a V of
//! 128·r·N bytes (32 MiB for restic's keys); more lanes in flight are faster (lanes paired
//! on every thread), fewer are leaner. The budget is `--scrypt-memory` /
//! `LOCKSMITH_SCRYPT_MEMORY` (256 MiB unless set), and never more than the cgroup's limit
//! leaves (`memory.max` under cgroup v2, `memory.limit_in_bytes` under v1): a container
//! given 128 MiB gets fewer lanes in flight, not an OOM kill.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The lanes' memory unless told otherwise.
pub const DEFAULT_BUDGET: u64 = 256 << 20;
/// Left to the rest of the process under a cgroup limit (buffers, the runtime, lock files).
const CGROUP_MARGIN: u64 = 32 << 20;

static BUDGET: AtomicU64 = AtomicU64::new(DEFAULT_BUDGET);

/// Sets the budget for the process (from the command line).
pub fn set_budget(bytes: u64) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

/// Bytes the lanes in flight may hold now: the budget, within what the cgroup leaves.
pub fn budget() -> u64 {
    let asked = BUDGET.load(Ordering::Relaxed);
    match cgroup_headroom(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup")) {
        Some(left) => asked.min(left.saturating_sub(CGROUP_MARGIN)),
        None => asked,
    }
}

/// Where a cgroup hierarchy keeps this process's memory limit.
struct Hierarchy {
    /// The line of `/proc/self/cgroup` that names it, up to the path.
    prefix: fn(&str) -> Option<&str>,
    /// Its mount below the cgroup root.
    mount: &'static str,
    limit: &'static str,
    usage: &'static str,
}

const HIERARCHIES: [Hierarchy; 2] = [
    Hierarchy {
        prefix: |l| l.strip_prefix("0::"),
        mount: "",
        limit: "memory.max",
        usage: "memory.current",
    },
    Hierarchy {
        prefix: |l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then_some(path)
        },
        mount: "memory",
        limit: "memory.limit_in_bytes",
        usage: "memory.usage_in_bytes",
    },
];

/// cgroup v1 writes "no limit" as a number near 2^63.
const NO_LIMIT: u64 = 1 << 60;

/// A size as `--scrypt-memory` takes it: bytes, or a number with `K`, `M`, `G` (`KiB`,
/// `MiB`, `GiB` alike: binary units), at least 1 MiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 64MiB, 1G, 268435456)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown unit {other:?} in {s:?} (K, M or G)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("{s:?} is less than 1 MiB"));
    }
    Ok(bytes)
}

/// What the tightest memory limit of this process's cgroup and its ancestors leaves
/// (limit − usage), under cgroup v2 or v1; `None` without a limit. In a container the
/// path names the host's view and is missing below the mount: its root holds the limit.
fn cgroup_headroom(self_cgroup: &Path, root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(self_cgroup).ok()?;
    HIERARCHIES
        .iter()
        .filter_map(|h| {
            let path = text.lines().find_map(h.prefix)?;
            headroom_in(h, &root.join(h.mount), path)
        })
        .min()
}

fn headroom_in(h: &Hierarchy, mount: &Path, path: &str) -> Option<u64> {
    let mut dir: PathBuf = mount.join(path.trim().trim_start_matches('/'));
    let mut least: Option<u64> = None;
    loop {
        let read = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        if let Some(max) = read(h.limit).filter(|m| *m < NO_LIMIT) {
            let left = max.saturating_sub(read(h.usage).unwrap_or(0));
            least = Some(least.map_or(left, |l| l.min(left)));
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            return least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units_and_bad_ones_say_why() {
        for (s, want) in [
            ("64MiB", 64 << 20),
            ("64M", 64 << 20),
            ("1g", 1 << 30),
            ("2048 KiB", 2 << 20),
            ("268435456", 256 << 20),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in ["", "MiB", "64 furlongs", "512K", "-1M", "99999999999999G"] {
            assert!(parse_size(s).is_err(), "{s}");
        }
    }

    #[test]
    fn the_tightest_cgroup_limit_on_the_path_counts() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let own = root.join("system.slice/locksmith.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(root.join("system.slice/memory.max"), "max\n").unwrap();
        std::fs::write(own.join("memory.max"), format!("{}\n", 200 << 20)).unwrap();
        std::fs::write(own.join("memory.current"), format!("{}\n", 50 << 20)).unwrap();
        let me = root.join("cgroup");
        std::fs::write(&me, "0::/system.slice/locksmith.service\n").unwrap();
        assert_eq!(cgroup_headroom(&me, root), Some(150 << 20));
        std::fs::write(
            root.join("system.slice/memory.max"),
            format!("{}\n", 100 << 20),
        )
        .unwrap();
        assert_eq!(cgroup_headroom(&me, root), Some(100 << 20));
        // A container's own cgroup namespace: "0::/", its limit at the root.
        std::fs::write(&me, "0::/\n").unwrap();
        assert_eq!(cgroup_headroom(&me, root), None);
        std::fs::write(root.join("memory.max"), format!("{}\n", 64 << 20)).unwrap();
        assert_eq!(cgroup_headroom(&me, root), Some(64 << 20));
    }

    #[test]
    fn cgroup_v1_limits_count_and_unlimited_is_no_limit() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let own = root.join("memory/docker/abc");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        let me = root.join("cgroup");
        std::fs::write(&me, "5:devices:/docker/abc\n4:memory:/docker/abc\n0::/\n").unwrap();
        assert_eq!(cgroup_headroom(&me, root), None);
        std::fs::write(
            own.join("memory.limit_in_bytes"),
            format!("{}\n", 300 << 20),
        )
        .unwrap();
        std::fs::write(
            own.join("memory.usage_in_bytes"),
            format!("{}\n", 100 << 20),
        )
        .unwrap();
        assert_eq!(cgroup_headroom(&me, root), Some(200 << 20));
        // Inside the container: the host's path is not there; the mount's root is its own.
        std::fs::remove_dir_all(root.join("memory/docker")).unwrap();
        std::fs::write(
            root.join("memory/memory.limit_in_bytes"),
            format!("{}\n", 128 << 20),
        )
        .unwrap();
        assert_eq!(cgroup_headroom(&me, root), Some(128 << 20));
    }
}
