//! `pre-unlock.sh` and `post-unlock.sh`: run with the caller's environment and output,
//! in their own process group so a time limit ends everything they started.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum HookOutcome {
    NotFound,
    NotExecutable,
    Ran(ExitStatus),
    TimedOut(Duration),
    Failed(String),
}

impl HookOutcome {
    /// The log line for this outcome.
    pub fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            HookOutcome::NotFound => format!("hook {p}: not found, skipped"),
            HookOutcome::NotExecutable => {
                format!("ERROR: hook {p} is not executable, skipped")
            }
            HookOutcome::Ran(st) if st.success() => format!("hook {p}: done"),
            HookOutcome::Ran(st) => format!("hook {p} failed ({st}), ignored"),
            HookOutcome::TimedOut(t) => format!(
                "hook {p} did not finish within HOOK_TIMEOUT={} s: killed, ignored",
                t.as_secs()
            ),
            HookOutcome::Failed(why) => format!("hook {p} could not run ({why}), ignored"),
        }
    }
}

pub fn run(path: &Path, args: &[String], timeout: Option<Duration>) -> HookOutcome {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return HookOutcome::NotFound,
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return HookOutcome::NotExecutable;
    }
    let mut child = match Command::new(path).args(args).process_group(0).spawn() {
        Ok(c) => c,
        Err(e) => return HookOutcome::Failed(e.to_string()),
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return HookOutcome::Ran(st),
            Ok(None) => {}
            Err(e) => return HookOutcome::Failed(e.to_string()),
        }
        if let Some(limit) = timeout
            && start.elapsed() >= limit
        {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait();
            return HookOutcome::TimedOut(limit);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
