//! The audited unlock: inspect, refuse what is unsafe, delegate removal to
//! `restic unlock`, and leave the artefacts operators' tools read. Nothing after the
//! removal step changes the exit code.

mod options;
pub mod plan;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Local, Utc};

pub use options::{Asked, Dirs, Scope, UnlockOptions};
use plan::{Danger, Plan, Refusal};

use crate::audit::summary::{Summary, on_off};
use crate::audit::{self, RunLog, hooks, mail, metrics, webhook};
use crate::config::RepoConfig;
use crate::exit::Exit;
use crate::location::Masked;
use crate::process::ThisHost;
use crate::report::Report;

/// What the inspection found, or why it could not.
type Inspection = Result<Report, String>;

fn count(i: &Inspection) -> Option<usize> {
    i.as_ref()
        .ok()
        .map(|r| r.counts.total + r.counts.unreadable)
}

struct Run<'a> {
    o: &'a UnlockOptions,
    log: RunLog,
    rt: tokio::runtime::Runtime,
}

impl Run<'_> {
    fn inspect(&mut self, cfg: &RepoConfig, when: &str) -> Inspection {
        let host = ThisHost::new();
        let got = self.rt.block_on(crate::inspect(cfg, &host));
        match got {
            Ok(r) => {
                let c = &r.counts;
                self.log.line(&format!(
                    "locks {when}: {} ({} exclusive, {} non-exclusive, {} stale, {} unsafe, {} unreadable)",
                    c.total + c.unreadable,
                    c.exclusive,
                    c.non_exclusive,
                    c.stale,
                    c.unsafe_,
                    c.unreadable
                ));
                Ok(r)
            }
            Err(e) => {
                let why = self.log.redactor().scrub(&e.to_string());
                self.log.line(&format!(
                    "cannot read the locks {when}: {why}; count unknown"
                ));
                Err(why)
            }
        }
    }

    fn log_locks(&mut self, r: &Report) {
        for l in &r.locks {
            let v = &l.verdict;
            let plain = if v.restic_unlock_removes {
                "REMOVES"
            } else {
                "keeps"
            };
            self.log.line(&format!(
                "  lock {} {} {}@{} pid {} age {}: holder {}; restic unlock {plain}; restic unlock --remove-all REMOVES{}",
                crate::restic::short_id(&l.id),
                if l.exclusive { "exclusive" } else { "shared" },
                l.username,
                l.hostname,
                l.pid,
                crate::verdict::human_age(v.age_seconds),
                v.holder.as_str(),
                if v.unsafe_ { "; UNSAFE" } else { "" }
            ));
            self.log.line(&format!("    {}", v.reason));
        }
        for u in &r.unreadable {
            self.log.line(&format!(
                "  unreadable {}: {}; {}",
                crate::restic::short_id(&u.id),
                u.error,
                u.kind.restic_effect()
            ));
        }
    }

    /// `restic version` of the restic this run would call: (major, minor, patch).
    fn restic_version(&mut self) -> Option<(u32, u32, u32)> {
        let out = Command::new(&self.o.restic_bin)
            .arg("version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text.split_whitespace().nth(1)?;
        let mut n = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((n.next()??, n.next()??, n.next().flatten().unwrap_or(0)))
    }

    fn restic_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for c in &self.o.cacerts {
            if std::fs::File::open(c).is_ok() {
                args.push("--cacert".to_string());
                args.push(c.display().to_string());
            }
        }
        args.push("unlock".into());
        if self.o.asked.scope == Scope::All {
            args.push("--remove-all".into());
        }
        args
    }

    /// `restic unlock`, its output appended to the log; its exit code.
    fn run_restic(&mut self, cfg: &RepoConfig, args: &[String]) -> i32 {
        let mut cmd = Command::new(&self.o.restic_bin);
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
                self.log.output(&text);
                match out.status.code() {
                    Some(c) => c,
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        128 + out.status.signal().unwrap_or(0)
                    }
                }
            }
            Err(e) => {
                self.log.line(&format!(
                    "ERROR: cannot run {}: {e}",
                    self.o.restic_bin.display()
                ));
                Exit::Other.code()
            }
        }
    }

    fn hook(&mut self, name: &str, args: &[String]) {
        let path = self.o.hook_dir.join(name);
        self.log.line(&format!("running hook {}", path.display()));
        let outcome = hooks::run(&path, args, self.o.hook_timeout);
        self.log.line(&outcome.describe(&path));
    }
}

/// Runs the whole audited unlock and returns how it ends.
pub fn run(o: &UnlockOptions) -> Exit {
    let started = Local::now();
    let clock = Instant::now();
    let mut run = Run {
        o,
        log: RunLog::start(&o.log_dir, o.log_verbose, o.redactor.clone()),
        rt: crate::runtime(),
    };
    // A fresh mail transcript too: an old one must not describe this run.
    let _ = std::fs::write(o.log_dir.join(audit::MAIL_LOG_FILE), b"");

    let repo_shown = o
        .repo
        .resolve_repository()
        .map(|r| Masked::new(&r).to_string())
        .unwrap_or_default();
    let restic_line = |args: &[String]| format!("restic {}", args.join(" "));
    run.log.line(&format!("release: {}", o.release));
    run.log.line(&format!(
        "repository: {}",
        if repo_shown.is_empty() {
            "(none)"
        } else {
            &repo_shown
        }
    ));
    run.log.line(&format!(
        "CA certificate: {}",
        if o.cacerts.is_empty() {
            "(none)".to_string()
        } else {
            o.cacerts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    ));
    run.log.line(&format!(
        "remove-all: {}",
        on_off(o.asked.scope == Scope::All)
    ));
    run.log
        .line(&format!("dry-run: {}", on_off(o.asked.dry_run)));
    run.log.line(&format!("auto-unlock: {}", o.auto_unlock));
    if o.asked.force {
        run.log.line("force: ON");
    }
    for w in &o.warnings {
        run.log.line(w);
    }

    let version = run.restic_version();
    let version_text = version.map(|(a, b, c)| format!("{a}.{b}.{c}"));
    run.log.line(&format!(
        "restic: {} ({})",
        version_text
            .as_deref()
            .unwrap_or("unknown: `restic version` did not answer"),
        o.restic_bin.display()
    ));

    run.hook("pre-unlock.sh", &[]);

    let cfg = o.repo.resolve();
    let mut before: Inspection = Err("not inspected".into());
    let mut after: Inspection = Err("not inspected".into());
    let mut refused = false;
    let mut message = String::new();
    let restic_args = run.restic_args();
    let exit = match &cfg {
        Err(e) => {
            message = format!("configuration error: {e}");
            run.log.line(&format!("ERROR: {message}"));
            Exit::Config
        }
        Ok(cfg) => {
            run.log.redactor_mut().add(cfg.password.expose());
            before = run.inspect(cfg, "before");
            if let Ok(r) = &before {
                let r = r.clone();
                run.log_locks(&r);
            }
            let line = restic_line(&restic_args);
            match plan::plan(o.asked, before.as_ref().ok()) {
                Plan::DryRun { dangers } => {
                    run.log
                        .line(&format!("dry run: would run {line}; nothing removed"));
                    for d in &dangers {
                        run.log
                            .line(&format!("dry run: this would be UNSAFE: {}", describe(d)));
                    }
                    after = before.clone();
                    Exit::Ok
                }
                Plan::Refuse {
                    why,
                    dangers,
                    safe_after,
                } => {
                    refused = true;
                    message = refusal(why, &line, &dangers, safe_after);
                    run.log.line(&format!("REFUSED: {message}"));
                    after = before.clone();
                    Exit::Refused
                }
                Plan::Run { forced, unseen } => {
                    if unseen {
                        run.log.line(
                            "WARNING: the locks could not be read: no safety check was possible",
                        );
                    }
                    for d in &forced {
                        run.log
                            .line(&format!("--force: removing anyway: {}", describe(d)));
                    }
                    run.log.line(&format!("running: {line}"));
                    let code = run.run_restic(cfg, &restic_args);
                    run.log.line(&exit_meaning(code, version));
                    after = run.inspect(cfg, "after");
                    Exit::Restic(code)
                }
            }
        }
    };

    let exit_code = exit.code();
    if exit_code == Exit::Ok.code() {
        run.log.line("result: success");
    } else {
        run.log
            .line(&format!("result: FAILED with exit code {exit_code}"));
        run.log.copy_to_error_log();
    }
    let finished = Local::now();
    let duration = clock.elapsed().as_secs();
    run.log
        .line(&format!("finished in {}", audit::human_duration(duration)));

    // Artefacts, in the contract's order. None of them can change the exit code.
    let detail = before.as_ref().ok();
    let summary = Summary {
        hostname: o.hostname.clone(),
        release: o.release.clone(),
        started_at: audit::timestamp(started),
        finished_at: audit::timestamp(finished),
        started_epoch: started.timestamp(),
        finished_epoch: finished.timestamp(),
        duration_seconds: duration,
        repository: repo_shown.clone(),
        remove_all: o.asked.scope == Scope::All,
        dry_run: o.asked.dry_run,
        locks_before: count(&before),
        locks_after: count(&after),
        exit_code,
        force: o.asked.force,
        refused,
        message: run.log.redactor().scrub(&message),
        locks_stale: detail.map(|r| r.counts.stale),
        locks_unsafe: detail.map(|r| r.counts.unsafe_),
        locks_unreadable: detail.map(|r| r.counts.unreadable),
        restic_command: restic_line(&restic_args),
        restic_version: version_text,
        locks: detail.map(|r| r.locks.clone()).unwrap_or_default(),
    };
    let json = run.log.redactor().scrub(&summary.render());
    let json_path = o.log_dir.join(audit::SUMMARY_FILE);
    match audit::write_atomic(&json_path, json.as_bytes()) {
        Ok(()) => run
            .log
            .line(&format!("summary written to {}", json_path.display())),
        Err(e) => run
            .log
            .line(&format!("ERROR: cannot write {}: {e}", json_path.display())),
    }

    deliver_webhook(&mut run, &json, exit_code);
    write_metrics(
        &mut run,
        exit_code,
        duration,
        started.timestamp(),
        finished.timestamp(),
        &after,
    );
    send_mail(&mut run, exit_code, duration, &repo_shown);
    run.hook("post-unlock.sh", &[exit_code.to_string()]);
    exit
}

/// restic's exit code in words, as the release that ran documents it: 10, 11 (0.17.0),
/// 12 (0.17.1) and 130 (0.19.0) are restic's own from those releases on; anything else
/// is a failure, passed through as it is.
fn exit_meaning(code: i32, version: Option<(u32, u32, u32)>) -> String {
    let since = |v: (u32, u32, u32)| version.is_some_and(|have| have >= v);
    let what = match code {
        0 => "success",
        1 => "error",
        3 => "incomplete (some files could not be read)",
        10 if since((0, 17, 0)) => "the repository does not exist",
        11 if since((0, 17, 0)) => "the repository could not be locked",
        12 if since((0, 17, 1)) => "wrong password or no key found",
        130 if since((0, 19, 0)) => "interrupted",
        c if c > 128 => "killed by a signal",
        _ => "not a code this restic documents: a failure",
    };
    format!("restic exited {code}: {what}")
}

fn describe(d: &Danger) -> String {
    format!(
        "lock {} of {}: {}",
        crate::restic::short_id(&d.id),
        d.holder,
        d.reason
    )
}

/// The refusal in one message: what was not run, over which locks, and whether (and
/// when) waiting makes it safe.
fn refusal(
    why: Refusal,
    line: &str,
    dangers: &[Danger],
    safe_after: Option<DateTime<Utc>>,
) -> String {
    match why {
        Refusal::Unseen => format!(
            "refused: the locks could not be read, so {line} would remove locks nobody has seen, a live holder's among them; nothing was removed; re-run with --force to do it anyway"
        ),
        Refusal::Unsafe => {
            let named: Vec<String> = dangers.iter().map(describe).collect();
            let wait = match safe_after {
                Some(t) => format!(
                    "; safe after {} (local time), when restic removes them by age without a probe, unless they are refreshed meanwhile",
                    t.with_timezone(&Local).format("%H:%M:%S")
                ),
                None => {
                    "; waiting will not make it safe: a live holder refreshes its lock".to_string()
                }
            };
            format!(
                "refused: {line} would remove a lock whose holder is alive, or SIGHUP a live process that is not the holder ({}){wait}; nothing was removed; re-run with --force to do it anyway",
                named.join("; ")
            )
        }
    }
}

fn deliver_webhook(run: &mut Run, json: &str, exit_code: i32) {
    let o = run.o;
    let Some(url) = &o.webhook_url else {
        return;
    };
    let shown = webhook::shown_url(url.expose());
    if o.webhook_on_error && exit_code == 0 {
        run.log.line(&format!(
            "webhook {shown}: skipped (WEBHOOK_ON_ERROR=ON and the run succeeded)"
        ));
        return;
    }
    let hook = webhook::Webhook {
        url: url.clone(),
        auth: o.webhook_auth.clone(),
        timeout: o.webhook_timeout,
    };
    let body = json.strip_suffix('\n').unwrap_or(json).to_string();
    match run.rt.block_on(hook.post(body)) {
        Ok(status) => run
            .log
            .line(&format!("webhook {shown}: delivered ({status})")),
        Err(why) => run
            .log
            .line(&format!("ERROR: webhook {shown}: not delivered: {why}")),
    }
}

fn write_metrics(
    run: &mut Run,
    exit_code: i32,
    duration: u64,
    started: i64,
    finished: i64,
    after: &Inspection,
) {
    let Some(dir) = &run.o.metrics_dir else {
        return;
    };
    let text = metrics::render(
        &metrics::RunMetrics {
            hostname: run.o.hostname.clone(),
            exit_code,
            duration_seconds: duration,
            started_epoch: started,
            finished_epoch: finished,
        },
        after.as_ref().ok(),
    );
    let path = dir.join(audit::METRICS_FILE);
    if !dir.is_dir() {
        run.log.line(&format!(
            "metrics: METRICS_DIR {} does not exist, skipped",
            dir.display()
        ));
        return;
    }
    match audit::write_atomic(&path, text.as_bytes()) {
        Ok(()) => run
            .log
            .line(&format!("metrics written to {}", path.display())),
        Err(e) => run.log.line(&format!(
            "metrics: cannot write {}: {e}, skipped",
            path.display()
        )),
    }
}

fn send_mail(run: &mut Run, exit_code: i32, duration: u64, repo_shown: &str) {
    let o = run.o;
    if o.mail_rcpt.is_empty() {
        return;
    }
    if o.mail_on_error && exit_code == 0 {
        run.log
            .line("mail: skipped (MAILX_ON_ERROR=ON and the run succeeded)");
        return;
    }
    let status = if exit_code == 0 {
        "[OK]".to_string()
    } else {
        format!("[FAIL {exit_code}]")
    };
    let subject = format!(
        "{status} Unlock {} \u{b7} {} \u{b7} {repo_shown}",
        o.hostname,
        audit::human_duration(duration)
    );
    let settings = match &o.smtp_env {
        Err(e) => Err(e.clone()),
        Ok(Some(s)) => Ok(s.clone()),
        Ok(None) => match std::fs::read_to_string(&o.msmtprc) {
            Ok(text) => mail::from_msmtprc(&text, &o.msmtprc.display().to_string()).and_then(|s| {
                s.ok_or_else(|| format!("{} names no SMTP host", o.msmtprc.display()))
            }),
            Err(e) => Err(format!(
                "no SMTP_HOST and cannot read {}: {e}",
                o.msmtprc.display()
            )),
        },
    };
    let mut transcript = vec![format!("mail step at {}", audit::timestamp(Local::now()))];
    let result = settings.and_then(|s| {
        let from = format!("unlock@{}", o.hostname);
        mail::send(
            &s,
            &from,
            &o.mail_rcpt,
            &subject,
            run.log.text(),
            &mut transcript,
        )
    });
    match &result {
        Ok(answer) => run.log.line(&format!(
            "mail to {}: sent ({answer})",
            o.mail_rcpt.join(", ")
        )),
        Err(why) => {
            transcript.push(format!("not sent: {why}"));
            let why = run.log.redactor().scrub(why);
            run.log.line(&format!(
                "ERROR: mail to {}: not sent: {why}",
                o.mail_rcpt.join(", ")
            ));
        }
    }
    let text = run.log.redactor().scrub(&(transcript.join("\n") + "\n"));
    let path: &Path = &o.log_dir.join(audit::MAIL_LOG_FILE);
    if let Err(e) = audit::write_atomic(path, text.as_bytes()) {
        run.log
            .line(&format!("cannot write {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::exit_meaning;

    #[test]
    fn restic_exit_codes_are_named_by_release() {
        let v14 = Some((0, 14, 0));
        let v19 = Some((0, 19, 1));
        assert_eq!(
            exit_meaning(12, v19),
            "restic exited 12: wrong password or no key found"
        );
        assert!(exit_meaning(12, v14).contains("not a code this restic documents"));
        assert!(exit_meaning(12, Some((0, 17, 0))).contains("not a code"));
        assert!(exit_meaning(10, Some((0, 17, 0))).contains("does not exist"));
        assert!(exit_meaning(130, Some((0, 18, 1))).contains("killed by a signal"));
        assert!(exit_meaning(130, v19).contains("interrupted"));
        assert!(exit_meaning(11, None).contains("not a code"));
        assert!(exit_meaning(1, v14).ends_with("error"));
    }
}
