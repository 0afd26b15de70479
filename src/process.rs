//! What this host can tell about a lock's holder: its name, whether a PID exists, and when
//! that PID's process started. The probe is `kill(pid, 0)`: it never delivers a signal.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rustix::io::Errno;

use crate::kernel::Kernel;
use rustix::process::{Pid, test_kill_process, test_kill_process_group};

/// The answer of `kill(pid, 0)` (and so of restic's `kill(pid, SIGHUP)` but for delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidState {
    /// The call succeeded: a signal would be delivered.
    Signalable,
    /// EPERM: the process exists but belongs to someone else.
    NoPermission,
    /// ESRCH: no such process.
    Absent,
}

/// Where restic's `kill(pid, SIGHUP)` probe lands for a lock's PID. restic holds the PID as
/// Go's 64-bit `int`; Go refuses exactly 0 and −1 itself, then hands the value to
/// `kill(2)` (restic 0.14, Go 1.19) or to `pidfd_open(2)` with a fall-back to `kill(2)` for
/// anything pidfd_open rejects (restic ≥ 0.17, Go ≥ 1.23). Both system calls take a 32-bit
/// `pid_t`, so the kernel keeps the low 32 bits: 2^32 + P signals P, 2^32 becomes
/// `kill(0)` and 2^32 − 1 becomes `kill(−1)`. The pidfd path ends in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// 0 or −1 as 64-bit values: Go fails before any system call, restic says "gone".
    Refused,
    /// One process (what `kill` addresses with a positive argument).
    Process(i32),
    /// `kill(0)`: the process group of `restic unlock` itself.
    OwnGroup,
    /// `kill(−1)`: every process the caller may signal (as root, the whole machine).
    Everyone,
    /// `kill(−g)`: every process of group g.
    Group(i32),
    /// `kill(INT_MIN)`: the kernel answers ESRCH without signalling anyone.
    Nobody,
}

impl SignalTarget {
    pub fn of(pid: i64) -> SignalTarget {
        if pid == 0 || pid == -1 {
            return SignalTarget::Refused;
        }
        // The kernel's pid_t: the low 32 bits, as a signed value.
        match pid as i32 {
            0 => SignalTarget::OwnGroup,
            -1 => SignalTarget::Everyone,
            i32::MIN => SignalTarget::Nobody,
            k if k > 0 => SignalTarget::Process(k),
            k => SignalTarget::Group(-k),
        }
    }

    /// The value `kill(2)` receives.
    pub fn kill_arg(self) -> Option<i32> {
        match self {
            SignalTarget::Refused => None,
            SignalTarget::Process(k) => Some(k),
            SignalTarget::OwnGroup => Some(0),
            SignalTarget::Everyone => Some(-1),
            SignalTarget::Group(g) => Some(-g),
            SignalTarget::Nobody => Some(i32::MIN),
        }
    }
}

/// The host as locks are judged from it; tests substitute their own.
pub trait HostView {
    fn hostname(&self) -> &str;
    /// Signal-0 probe of one process (`pid` > 0).
    fn probe(&self, pid: i32) -> PidState;
    /// Signal-0 probe of a process group (`group` > 0).
    fn probe_group(&self, group: i32) -> PidState;
    /// When the process now holding `pid` started, where the system says.
    fn started(&self, pid: i32) -> Option<DateTime<Utc>>;
    /// The command name of the process now holding `pid`, where the system says.
    fn command(&self, pid: i32) -> Option<String>;
    /// The kernel's other namespaces, where already read (a peer's answer carries them).
    fn kernel(&self) -> Option<&Kernel> {
        None
    }
    /// Reads the kernel for the processes whose own PID is in `asked`, and with `names`
    /// the host names it carries (I/O: once per reading, through [`Sight`]).
    fn read_kernel(&self, _asked: &BTreeSet<i32>, _names: bool) -> Kernel {
        Kernel::default()
    }
}

/// One reading's view of a host: its direct probes, and its kernel read at most once, at
/// the first verdict that needs it (most readings never do: their holders are alive here).
pub struct Sight<'a> {
    host: &'a dyn HostView,
    asked: BTreeSet<i32>,
    /// Some lock names a host other than this one: the kernel's host names are needed.
    names: bool,
    kernel: std::sync::OnceLock<Kernel>,
}

impl<'a> Sight<'a> {
    /// `locks`: the host name and PID each of the reading's locks names.
    pub fn new<'l>(
        host: &'a dyn HostView,
        locks: impl Iterator<Item = (&'l str, i64)>,
    ) -> Sight<'a> {
        let mut names = false;
        let asked = locks
            .inspect(|(h, _)| names |= *h != host.hostname())
            .filter_map(|(_, p)| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .collect();
        Sight {
            host,
            asked,
            names,
            kernel: std::sync::OnceLock::new(),
        }
    }
}

impl HostView for Sight<'_> {
    fn hostname(&self) -> &str {
        self.host.hostname()
    }
    fn probe(&self, pid: i32) -> PidState {
        self.host.probe(pid)
    }
    fn probe_group(&self, group: i32) -> PidState {
        self.host.probe_group(group)
    }
    fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
        self.host.started(pid)
    }
    fn command(&self, pid: i32) -> Option<String> {
        self.host.command(pid)
    }
    fn kernel(&self) -> Option<&Kernel> {
        if let Some(k) = self.host.kernel() {
            return Some(k);
        }
        Some(
            self.kernel
                .get_or_init(|| self.host.read_kernel(&self.asked, self.names)),
        )
    }
}

/// The real host.
pub struct ThisHost {
    hostname: String,
    boot: Option<i64>,
    ticks: u64,
}

impl ThisHost {
    pub fn new() -> ThisHost {
        ThisHost {
            hostname: local_hostname(),
            boot: boot_time(),
            ticks: rustix::param::clock_ticks_per_second(),
        }
    }
}

impl ThisHost {
    /// When this host booted, where `/proc/stat` says.
    pub fn boot(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.boot?, 0)
    }
}

impl Default for ThisHost {
    fn default() -> Self {
        Self::new()
    }
}

/// The name restic compares against (Go's `os.Hostname`: the kernel's node name).
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        })
}

fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The fields of `/proc/PID/stat` from field 3 on. The command name (field 2) may hold
/// spaces and parentheses, so count from the last `)`.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the state letter; the rest are numbers.
    Some(
        after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Field `n` (1-based, as proc(5) numbers them, `n` ≥ 3).
fn field(fields: &[u64], n: usize) -> Option<u64> {
    fields.get(n - 3).copied()
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot.
fn start_ticks(pid: i32) -> Option<u64> {
    field(&stat_fields(&pid.to_string())?, 22)
}

/// This process's resources, for the `process_*` series Prometheus clients export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub start_time_seconds: f64,
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

/// This process's [`Usage`], where `/proc` tells it.
pub fn own_usage() -> Option<Usage> {
    let f = stat_fields("self")?;
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    let page = rustix::param::page_size() as u64;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    Some(Usage {
        start_time_seconds: boot_time()? as f64 + field(&f, 22)? as f64 / ticks,
        cpu_seconds: (field(&f, 14)? + field(&f, 15)?) as f64 / ticks,
        resident_memory_bytes: field(&f, 24)? * page,
        virtual_memory_bytes: field(&f, 23)?,
        open_fds,
        max_fds,
    })
}

impl HostView for ThisHost {
    fn hostname(&self) -> &str {
        &self.hostname
    }

    fn probe(&self, pid: i32) -> PidState {
        errno_state(Pid::from_raw(pid).map_or(Err(Errno::SRCH), test_kill_process))
    }

    fn probe_group(&self, group: i32) -> PidState {
        errno_state(Pid::from_raw(group).map_or(Err(Errno::SRCH), test_kill_process_group))
    }

    fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
        if pid <= 0 || self.ticks == 0 {
            return None;
        }
        let ticks = start_ticks(pid)?;
        let ms = i64::try_from(ticks as i128 * 1000 / self.ticks as i128).ok()?;
        DateTime::from_timestamp_millis(self.boot?.checked_mul(1000)?.checked_add(ms)?)
    }

    fn command(&self, pid: i32) -> Option<String> {
        if pid <= 0 {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_string())
    }

    fn read_kernel(&self, asked: &BTreeSet<i32>, names: bool) -> Kernel {
        crate::kernel::linux::read(self, asked, names)
    }
}

fn errno_state(res: Result<(), Errno>) -> PidState {
    match res {
        Ok(()) => PidState::Signalable,
        Err(Errno::PERM) => PidState::NoPermission,
        Err(_) => PidState::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_usage_is_plausible() {
        let u = own_usage().expect("/proc/self");
        let started = ThisHost::new().started(std::process::id() as i32).unwrap();
        assert!(
            (u.start_time_seconds - started.timestamp() as f64).abs() < 2.0,
            "{u:?}"
        );
        assert!(
            u.resident_memory_bytes > 1 << 20 && u.virtual_memory_bytes >= u.resident_memory_bytes
        );
        assert!(u.open_fds >= 3 && u.max_fds >= u.open_fds, "{u:?}");
    }

    #[test]
    fn own_process_is_signalable_and_started_recently() {
        let host = ThisHost::new();
        let me = std::process::id() as i32;
        assert_eq!(host.probe(me), PidState::Signalable);
        let started = host.started(me).expect("own start time");
        let age = Utc::now() - started;
        assert!(age.num_seconds() >= -2 && age.num_hours() < 24, "{age}");
        assert!(host.command(me).is_some_and(|c| !c.is_empty()));
    }

    #[test]
    fn signal_targets_follow_go_and_the_kernel() {
        use SignalTarget::*;
        let cases: [(i64, SignalTarget); 12] = [
            (0, Refused),
            (-1, Refused),
            (4242, Process(4242)),
            (-4242, Group(4242)),
            ((1 << 32) + 4242, Process(4242)),
            (1 << 32, OwnGroup),
            ((1 << 32) - 1, Everyone),
            (-(1 << 32), OwnGroup),
            (-(1 << 32) + 1, Process(1)),
            (i64::from(i32::MIN), Nobody),
            (i64::MAX, Everyone),
            (i64::MIN, OwnGroup),
        ];
        for (pid, want) in cases {
            assert_eq!(SignalTarget::of(pid), want, "pid {pid}");
        }
        assert_eq!(Group(7).kill_arg(), Some(-7));
        assert_eq!(Everyone.kill_arg(), Some(-1));
    }

    #[test]
    fn extreme_pids_probe_without_overflow() {
        let host = ThisHost::new();
        assert_eq!(host.probe(i32::MAX), PidState::Absent);
        assert_eq!(host.probe_group(i32::MAX), PidState::Absent);
        assert_eq!(host.started(i32::MAX), None);
    }

    #[test]
    fn hostname_matches_kernel() {
        assert_eq!(
            local_hostname(),
            rustix::system::uname().nodename().to_string_lossy()
        );
    }
}
