//! The audit trail of an unlock run: the run log, the JSON summary, metrics, mail,
//! webhook and hooks. Every artefact goes through the same scrubbing of secrets.

pub mod hooks;
pub mod mail;
pub mod summary;
pub mod webhook;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local};

use crate::secret::Redactor;

pub const LOG_FILE: &str = "unlock-last.log";
pub const ERROR_LOG_FILE: &str = "unlock-error-last.log";
pub const MAIL_LOG_FILE: &str = "unlock-mail-last.log";
pub const SUMMARY_FILE: &str = "last-unlock.json";
pub const METRICS_FILE: &str = "restic_unlock.prom";

/// `%Y-%m-%dT%H:%M:%S%z` in the local time zone (`TZ`).
pub fn timestamp(t: DateTime<Local>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// The contract's run time: `<60 s: Ns`, `<1 h: NmNs`, else `NhNm`.
pub fn human_duration(secs: u64) -> String {
    crate::duration::human(
        secs.try_into().unwrap_or(i64::MAX),
        crate::duration::Style::Contract,
    )
}

/// Writes through a temporary file in the same directory and a rename, so readers never
/// see half a file.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The run log: `unlock-last.log`, started afresh, each line time-stamped, scrubbed, and
/// echoed to stdout when `LOG_VERBOSE` is on. Kept in memory too, for the mail body.
pub struct RunLog {
    dir: PathBuf,
    file: Option<File>,
    echo: bool,
    redactor: Redactor,
    text: String,
}

impl RunLog {
    pub fn start(dir: &Path, echo: bool, redactor: Redactor) -> RunLog {
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| File::create(dir.join(LOG_FILE)))
            .map_err(|e| {
                eprintln!(
                    "unlock: cannot write {}: {e}; logging to stdout only",
                    dir.join(LOG_FILE).display()
                )
            })
            .ok();
        RunLog {
            dir: dir.to_path_buf(),
            file,
            echo,
            redactor,
            text: String::new(),
        }
    }

    /// Later-learnt secrets (the password, once resolved) are scrubbed from then on.
    pub fn redactor_mut(&mut self) -> &mut Redactor {
        &mut self.redactor
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn append(&mut self, text: &str) {
        let text = self.redactor.scrub(text);
        if let Some(f) = &mut self.file {
            let _ = f.write_all(text.as_bytes());
        }
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        self.text.push_str(&text);
    }

    /// One time-stamped line.
    pub fn line(&mut self, msg: &str) {
        let stamped = format!(
            "[{}] {}\n",
            timestamp(Local::now()),
            crate::printable::printable(msg)
        );
        self.append(&stamped);
    }

    /// Another program's output, as it printed it (scrubbed), each line indented.
    pub fn output(&mut self, text: &str) {
        let mut block = String::new();
        for l in text.lines() {
            block.push_str("    ");
            block.push_str(&crate::printable::printable(l));
            block.push('\n');
        }
        self.append(&block);
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// `unlock-error-last.log`: a copy of the run log so far.
    pub fn copy_to_error_log(&mut self) {
        let path = self.dir.join(ERROR_LOG_FILE);
        if let Err(e) = write_atomic(&path, self.text.as_bytes()) {
            self.line(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn log_scrubs_secrets() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Redactor::default();
        r.add("hunter22");
        let mut log = RunLog::start(d.path(), false, r);
        log.line("password is hunter22");
        log.output("restic said hunter22\nbye");
        let text = std::fs::read_to_string(d.path().join(LOG_FILE)).unwrap();
        assert!(!text.contains("hunter22"));
        assert!(text.contains("password is ***"));
        assert!(text.contains("    bye\n"));
        assert_eq!(text, log.text());
    }
}
