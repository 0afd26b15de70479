//! The restic this run delegates to: its version, its command line, running it.

use std::path::Path;
use std::process::{Command, Stdio};

use super::UnlockOptions;
use super::options::Scope;
use crate::audit::RunLog;
use crate::config::RepoConfig;
use crate::exit::Exit;

/// What asking `restic version` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// (major, minor, patch).
    Is((u32, u32, u32)),
    /// It could not be started (not found, not executable): why.
    NotFound(String),
    /// It ran, but named no version.
    NoAnswer,
}

impl Probe {
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        match self {
            Probe::Is(v) => Some(*v),
            _ => None,
        }
    }
}

/// `restic version` of the restic at `bin`.
pub fn probe(bin: &Path) -> Probe {
    let out = match Command::new(bin)
        .arg("version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => return Probe::NotFound(e.to_string()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = || {
        let v = text.split_whitespace().nth(1)?;
        let mut n = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((n.next()??, n.next()??, n.next().flatten().unwrap_or(0)))
    };
    parsed().map_or(Probe::NoAnswer, Probe::Is)
}

/// "restic not found", with what to do about it.
pub fn not_found(bin: &Path, why: &str) -> String {
    format!(
        "restic not found: cannot run {} ({why}); set RESTIC_BIN to restic's path, or put restic on PATH",
        bin.display()
    )
}

/// restic's arguments: `--cacert` for each readable CA file, `unlock`, `--remove-all`.
pub(super) fn args(o: &UnlockOptions) -> Vec<String> {
    let mut args = Vec::new();
    for c in &o.cacerts {
        if std::fs::File::open(c).is_ok() {
            args.push("--cacert".to_string());
            args.push(c.display().to_string());
        }
    }
    args.push("unlock".into());
    if o.asked.scope == Scope::All {
        args.push("--remove-all".into());
    }
    args
}

/// `restic unlock`, its output appended to the log; its exit code (128 + the signal that
/// ended it).
pub(super) fn run(o: &UnlockOptions, cfg: &RepoConfig, args: &[String], log: &mut RunLog) -> i32 {
    let mut cmd = Command::new(&o.restic_bin);
    cmd.args(args)
        .env("RESTIC_REPOSITORY", cfg.repo.expose())
        .env_remove("RESTIC_REPOSITORY_FILE")
        .env("RESTIC_PASSWORD", cfg.password.expose())
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND")
        .stdin(Stdio::null());
    match cmd.output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            log.output(&text);
            match out.status.code() {
                Some(c) => c,
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    128 + out.status.signal().unwrap_or(0)
                }
            }
        }
        Err(e) => {
            log.line(&format!(
                "ERROR: cannot run {}: {e}",
                o.restic_bin.display()
            ));
            Exit::Other.code()
        }
    }
}
