//! How a run went: its one audit line, its `--textfile` metrics, and the mail and
//! webhook when the wait ran out (a recovery's removals carry the audited unlock's own).

use std::collections::BTreeSet;
use std::time::Duration;

use super::RunOptions;
use super::tell::human;
use crate::exit::Exit;
use crate::report::metrics::{self, JobMetrics};

#[derive(Debug, Default)]
pub struct Account {
    pub waited: Duration,
    pub waited_for: BTreeSet<String>,
    pub removed: Vec<String>,
}

impl Account {
    /// The run's one line: waited how long, for whom, what was removed, how it ended.
    pub fn line(&self, exit: Exit, wait: Duration) -> String {
        let removed = match self.removed.len() {
            0 => "removed nothing".to_string(),
            n => format!(
                "removed {n} dead holder's lock{} ({})",
                if n == 1 { "" } else { "s" },
                self.removed.join(", ")
            ),
        };
        let waited = match self.waited_for.is_empty() {
            true => "did not wait".to_string(),
            false => format!(
                "waited {} for {}",
                human(self.waited),
                self.waited_for
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let ended = match exit {
            Exit::Restic(c) => format!("restic exited {c}"),
            Exit::Ok => "restic exited 0".into(),
            Exit::WaitedOut => format!("the wait ({}) ran out; restic did not run", human(wait)),
            Exit::NoRestic => "restic did not run: it was not found".into(),
            other => format!("restic did not run (exit {})", other.code()),
        };
        format!("{waited}; {removed}; {ended}")
    }

    /// `--textfile`: the run's gauges, written whole (atomically).
    pub fn metrics(&self, o: &RunOptions, command: &str, exit: Exit) -> Result<(), String> {
        let Some(path) = &o.textfile else {
            return Ok(());
        };
        let text = metrics::job_run(&JobMetrics {
            hostname: o.unlock.hostname.clone(),
            repository: shown(o),
            command: command.to_string(),
            exit_code: exit.code(),
            waited_seconds: self.waited.as_secs(),
            recovered: self.removed.len(),
            waited_out: exit == Exit::WaitedOut,
            finished_epoch: chrono::Utc::now().timestamp(),
        });
        crate::audit::write_atomic(path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// When the wait ran out: mail (`MAILX_RCPT`) and the webhook (`WEBHOOK_URL`), as the
    /// audited unlock configures them; what each did, in words.
    pub fn notice(&self, o: &RunOptions, line: &str, in_the_way: &str) -> Vec<String> {
        let u = &o.unlock;
        let repo = shown(o);
        let cmd = o.command.join(" ");
        let mut said = Vec::new();
        if !u.mail_rcpt.is_empty() {
            let subject = format!("[WAITED OUT] locksmith run {} \u{b7} {repo}", u.hostname);
            let body = format!(
                "`{cmd}` did not run on {}: {line}.\n\nIn the way: {in_the_way}\n\nSee `locksmith locks` for every lock and its verdict.\n",
                u.hostname
            );
            let sent = u.smtp().and_then(|s| {
                let from = format!("unlock@{}", u.hostname);
                crate::audit::mail::send(&s, &from, &u.mail_rcpt, &subject, &body, &mut Vec::new())
            });
            said.push(match sent {
                Ok(_) => format!("mail to {}: sent", u.mail_rcpt.join(", ")),
                Err(e) => format!("mail to {}: not sent: {e}", u.mail_rcpt.join(", ")),
            });
        }
        if let Some(url) = &u.webhook_url {
            let body = serde_json::json!({
                "job": "run",
                "hostname": u.hostname,
                "repository": repo,
                "command": cmd,
                "exit_code": Exit::WaitedOut.code(),
                "waited_seconds": self.waited.as_secs(),
                "waited_for": self.waited_for,
                "removed": self.removed,
                "message": line,
            });
            let hook = crate::audit::webhook::Webhook {
                url: url.clone(),
                auth: u.webhook_auth.clone(),
                timeout: u.webhook_timeout,
            };
            let shown = crate::audit::webhook::shown_url(url.expose());
            let posted = crate::runtime().block_on(hook.post(body.to_string()));
            said.push(match posted {
                Ok(status) => format!("webhook {shown}: delivered ({status})"),
                Err(e) => format!("webhook {shown}: not delivered: {e}"),
            });
        }
        said.iter().map(|s| u.redactor.scrub(s)).collect()
    }
}

/// The repository, masked, as every artefact names it.
fn shown(o: &RunOptions) -> String {
    o.repo
        .resolve_repository()
        .map(|r| crate::location::Masked::new(&r).to_string())
        .unwrap_or_default()
}
