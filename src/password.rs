//! Reading a password from a command or a file, bounded: a password is small and comes
//! quickly, so anything larger than [`MAX_PASSWORD`] or slower than [`COMMAND_LIMIT`] is
//! refused, with why, instead of growing without end or holding the run.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::ConfigError;

/// Longer than this is not a password (`yes`, `/dev/zero`, a file named by mistake).
pub const MAX_PASSWORD: usize = 4 << 10;
/// How long a password command may take.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

fn too_large() -> String {
    format!("more than {} KiB: not a password", MAX_PASSWORD >> 10)
}

/// At most [`MAX_PASSWORD`] + 1 bytes of `r`, so a larger source is told apart.
fn read_capped(r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(MAX_PASSWORD as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

fn text(bytes: Vec<u8>) -> Result<String, String> {
    if bytes.len() > MAX_PASSWORD {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| "not UTF-8".to_string())
}

/// The file's content, trimmed. `regular_only`: refuse anything but a regular file (serve
/// reads it again after every failure, and a pipe or a device would block or never end);
/// a one-shot run reads a pipe (`-p <(pass show x)`) as restic does.
pub fn from_file(path: &Path, regular_only: bool) -> Result<String, ConfigError> {
    let fail = |why: String| ConfigError::PasswordFile(format!("{}: {why}", path.display()));
    if regular_only {
        let bytes = crate::files::read_regular(path, MAX_PASSWORD as u64).map_err(|e| match e {
            crate::files::FileError::NotRegular => fail(
                "not a regular file; serve reads it again after failures, so it takes only a regular file".into(),
            ),
            crate::files::FileError::TooLarge(_) => fail(too_large()),
            e => fail(e.to_string()),
        })?;
        return text(bytes).map_err(fail);
    }
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let bytes = read_capped(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    text(bytes).map_err(fail)
}

/// Runs the command as restic does (split like a shell, no shell), stdout trimmed; killed
/// past [`COMMAND_LIMIT`] or past [`MAX_PASSWORD`] bytes of output.
pub fn from_command(cmd: &str) -> Result<String, ConfigError> {
    let fail = ConfigError::PasswordCommand;
    let words = shell_words::split(cmd).map_err(|e| fail(format!("cannot split it: {e}")))?;
    let Some((prog, args)) = words.split_first() else {
        return Err(fail("it is empty".into()));
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("cannot run {prog:?}: {e}")))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || read_capped(stdout));
    let status = wait_within(&mut child, &reader, COMMAND_LIMIT);
    let Some(status) = status else {
        stop(&mut child);
        let why = if reader.is_finished() {
            too_large()
        } else {
            format!("gave no password within {} s", COMMAND_LIMIT.as_secs())
        };
        return Err(fail(format!("{prog:?}: {why}")));
    };
    let bytes = reader.join().ok().and_then(Result::ok).unwrap_or_default();
    // A command cut off at the cap may die of SIGPIPE: the size is what to say.
    if bytes.len() > MAX_PASSWORD {
        return Err(fail(format!("{prog:?}: {}", too_large())));
    }
    if !status.success() {
        return Err(fail(format!("{prog:?} failed ({status})")));
    }
    text(bytes).map_err(|why| fail(format!("{prog:?}: {why}")))
}

/// The child's exit, unless `limit` passes first or it wrote more than a password
/// (the reader finished at its cap while the child still runs).
fn wait_within(
    child: &mut Child,
    reader: &std::thread::JoinHandle<std::io::Result<Vec<u8>>>,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    let mut reader_done_at = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if reader.is_finished() {
            // EOF or the cap: a child that closed its stdout exits at once; one at the cap
            // goes on writing.
            let at = *reader_done_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_millis(500) {
                return None;
            }
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_sources_are_refused_not_read_to_the_end() {
        let e = from_command("yes").unwrap_err().to_string();
        assert!(e.contains("more than 4 KiB"), "{e}");
        let e = from_file(Path::new("/dev/zero"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 4 KiB"), "{e}");
        let e = from_file(Path::new("/dev/zero"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_password_as_restic_reads_it() {
        assert_eq!(from_command("printf ' cmd pw \\n'").unwrap(), "cmd pw");
        let big = format!("printf {}", "x".repeat(MAX_PASSWORD));
        assert_eq!(from_command(&big).unwrap().len(), MAX_PASSWORD);
        let e = from_command("false").unwrap_err().to_string();
        assert!(e.contains("failed"), "{e}");
    }
}
