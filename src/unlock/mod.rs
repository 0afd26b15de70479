//! The audited unlock: inspect, refuse what is unsafe or unseen, delegate removal to
//! `restic unlock`, and leave the artefacts operators' tools read. [`run`] is the
//! contract's steps in their order; nothing after the removal step changes the exit code.

mod options;
pub mod plan;
mod restic;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};

pub use options::{Asked, Dirs, Scope, UnlockOptions};
use plan::{Danger, Plan, Refusal};

use crate::duration::words as human;

use crate::audit::summary::{Summary, on_off};
use crate::audit::{self, RunLog, hooks, mail, webhook};
use crate::config::RepoConfig;
use crate::error::Error;
use crate::exit::Exit;
use crate::location::Masked;
use crate::process::ThisHost;
use crate::report::Report;
use crate::report::metrics::{self, RunMetrics};

/// What an inspection found, or why it could not.
type Inspection = Result<Report, Error>;

fn count(i: Option<&Inspection>) -> Option<usize> {
    i.and_then(|i| i.as_ref().ok())
        .map(|r| r.counts.total + r.counts.unreadable)
}

/// How the removal step ended, for the result line and the artefacts.
struct Outcome {
    exit: Exit,
    /// `None`: not inspected (a configuration error).
    before: Option<Inspection>,
    /// `None`: the same as before (restic did not run).
    after: Option<Inspection>,
    refused: bool,
    /// Why it failed or was refused, for the summary.
    message: String,
}

impl Outcome {
    fn before(&self) -> Option<&Report> {
        self.before.as_ref().and_then(|i| i.as_ref().ok())
    }

    /// The state after the run (for a dry run or a refusal, as found).
    fn after(&self) -> Option<&Report> {
        match &self.after {
            Some(i) => i.as_ref().ok(),
            None => self.before(),
        }
    }

    fn counts_after(&self) -> Option<usize> {
        count(self.after.as_ref().or(self.before.as_ref()))
    }
}

struct Run<'a> {
    o: &'a UnlockOptions,
    log: RunLog,
    rt: tokio::runtime::Runtime,
    started: DateTime<Local>,
    clock: Instant,
    /// The masked repository, as every artefact names it.
    shown: String,
    restic_args: Vec<String>,
    version: Option<(u32, u32, u32)>,
    /// Why restic cannot be run, when it cannot be found.
    missing: Option<String>,
    /// When the run finished (step 9) and how long it took, in seconds.
    finished: DateTime<Local>,
    duration: u64,
}

pub use restic::{Probe, not_found, probe};

/// Runs the whole audited unlock, in the contract's order, and returns how it ends.
pub fn run(o: &UnlockOptions) -> Exit {
    let mut run = Run::start(o);
    run.header();
    run.hook("pre-unlock.sh", &[]);
    let outcome = run.unlock();
    run.record(&outcome);
    run.finish(&outcome);
    run.artefacts(&outcome);
    outcome.exit
}

impl Run<'_> {
    /// Step 2: the run log (and the mail transcript) afresh, the clock started.
    fn start(o: &UnlockOptions) -> Run<'_> {
        let started = Local::now();
        let clock = Instant::now();
        let log = RunLog::start(&o.log_dir, o.log_verbose, o.redactor.clone());
        // A fresh mail transcript too: an old one must not describe this run.
        let _ = std::fs::write(o.log_dir.join(audit::MAIL_LOG_FILE), b"");
        let shown = o
            .repo
            .resolve_repository()
            .map(|r| Masked::new(&r).to_string())
            .unwrap_or_default();
        Run {
            o,
            log,
            rt: crate::runtime(),
            started,
            clock,
            shown,
            restic_args: restic::args(o),
            version: None,
            missing: None,
            finished: started,
            duration: 0,
        }
    }

    /// Step 3: what this run is, in the log.
    fn header(&mut self) {
        let o = self.o;
        let repo = if self.shown.is_empty() {
            "(none)"
        } else {
            &self.shown
        };
        let cacerts = o
            .cacerts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>();
        let cacerts = if cacerts.is_empty() {
            "(none)".to_string()
        } else {
            cacerts.join(",")
        };
        self.log.line(&format!("release: {}", o.release));
        self.log.line(&format!("repository: {repo}"));
        self.log.line(&format!("CA certificate: {cacerts}"));
        self.log.line(&format!(
            "remove-all: {}",
            on_off(o.asked.scope == Scope::All)
        ));
        self.log
            .line(&format!("dry-run: {}", on_off(o.asked.dry_run)));
        self.log.line(&format!("auto-unlock: {}", o.auto_unlock));
        if o.asked.force {
            self.log.line("force: ON");
        }
        for w in &o.warnings {
            self.log.line(w);
        }
        let probe = restic::probe(&o.restic_bin);
        self.version = probe.version();
        let version = match &probe {
            Probe::Is(_) => self.version_text().unwrap_or_default(),
            Probe::NoAnswer => "unknown: `restic version` named no version".into(),
            Probe::NotFound(why) => {
                let message = not_found(&o.restic_bin, why);
                self.missing = Some(message.clone());
                message
            }
        };
        self.log
            .line(&format!("restic: {version} ({})", o.restic_bin.display()));
    }

    fn version_text(&self) -> Option<String> {
        self.version.map(|(a, b, c)| format!("{a}.{b}.{c}"))
    }

    fn restic_line(&self) -> String {
        format!("restic {}", self.restic_args.join(" "))
    }

    /// Steps 5 to 7: validate, inspect, decide, and run restic where the plan says so.
    fn unlock(&mut self) -> Outcome {
        let cfg = match self.o.repo.resolve() {
            Ok(cfg) => cfg,
            Err(e) => {
                let message = format!("configuration error: {e}");
                self.log.line(&format!("ERROR: {message}"));
                return Outcome {
                    exit: Exit::Config,
                    before: None,
                    after: None,
                    refused: false,
                    message,
                };
            }
        };
        self.log.redactor_mut().add(cfg.password.expose());
        let mut before = self.inspect(&cfg, "before");
        if let Ok(r) = &before {
            self.log_locks(r);
        }
        let mut plan = plan::plan(self.o.asked, before.as_ref().ok());
        if let Some(wait) = self.o.wait {
            self.wait_out(&cfg, wait, &mut before, &mut plan);
        }
        let mut outcome = Outcome {
            exit: Exit::Ok,
            before: Some(before),
            after: None,
            refused: false,
            message: String::new(),
        };
        self.act(&cfg, plan, &mut outcome);
        outcome
    }

    /// Step 7: the plan carried out.
    fn act(&mut self, cfg: &RepoConfig, plan: Plan, outcome: &mut Outcome) {
        let line = self.restic_line();
        if let (Some(missing), Plan::DryRun { .. } | Plan::Run { .. }) = (&self.missing, &plan) {
            outcome.message = missing.clone();
            self.log.line(&format!("ERROR: {missing}"));
            outcome.exit = Exit::NoRestic;
            return;
        }
        match plan {
            Plan::DryRun { dangers, not_read } => {
                self.log
                    .line(&format!("dry run: would run {line}; nothing removed"));
                for d in &dangers {
                    self.log
                        .line(&format!("dry run: this would be UNSAFE: {}", describe(d)));
                }
                if not_read > 0 {
                    outcome.message = format!(
                        "dry run incomplete: {not_read} of the entries in locks/ were not read before the deadline, so what {line} would do with them is unknown (--timeout, --deadline)"
                    );
                    self.log.line(&format!("ERROR: {}", outcome.message));
                    outcome.exit = Exit::Other;
                }
            }
            Plan::Refuse {
                why,
                dangers,
                safe_after,
            } => {
                outcome.refused = true;
                let refused = Refused {
                    why,
                    scope: self.o.asked.scope,
                    dangers,
                    safe_after,
                    instead: outcome
                        .before()
                        .and_then(|r| plan::safe_instead(self.o.asked, r)),
                };
                outcome.message = refusal(&refused, &line);
                if let (Some(w), Refusal::Unsafe) = (self.o.wait, why) {
                    outcome.message =
                        format!("after waiting {} (--wait): {}", human(w), outcome.message);
                }
                let mut lines = outcome.message.lines();
                let first = lines.next().unwrap_or_default();
                self.log.line(&format!("REFUSED: {first}"));
                for l in lines {
                    self.log.line(&format!("  {l}"));
                }
                outcome.exit = Exit::Refused;
            }
            Plan::Run {
                forced,
                unseen,
                not_read,
            } => {
                if unseen {
                    self.log
                        .line("WARNING: the locks could not be read: no safety check was possible");
                }
                if not_read > 0 {
                    self.log.line(&format!(
                        "--force: running although {not_read} of the entries in locks/ were not read"
                    ));
                }
                for d in &forced {
                    self.log
                        .line(&format!("--force: removing anyway: {}", describe(d)));
                }
                self.log.line(&format!("running: {line}"));
                let code = restic::run(self.o, cfg, &self.restic_args, &mut self.log);
                self.log.line(&exit_meaning(code, self.version));
                outcome.after = Some(self.inspect(cfg, "after"));
                outcome.exit = Exit::Restic(code);
            }
        }
    }

    /// `--wait`: while the plan refuses only over dangers that can pass (a live holder
    /// that ends, a lock restic removes from its `safe_after`), re-read at a growing pause
    /// (2 s to 10 s, and at `safe_after`) until it does not, or the wait runs out. A
    /// re-reading that fails changes nothing: the dangers last seen still stand.
    fn wait_out(
        &mut self,
        cfg: &RepoConfig,
        wait: Duration,
        before: &mut Inspection,
        plan: &mut Plan,
    ) {
        let clock = Instant::now();
        let mut pause = Duration::from_secs(2);
        let mut said = String::new();
        while let Plan::Refuse {
            why: Refusal::Unsafe,
            dangers,
            safe_after,
        } = &*plan
        {
            let left = wait.saturating_sub(clock.elapsed());
            // Said again only when the locks in the way change, not their ages.
            let now: Vec<&str> = dangers.iter().map(|d| d.id.as_str()).collect();
            let now = now.join(" ");
            if now != said {
                let why: Vec<String> = dangers.iter().map(describe).collect();
                self.log.line(&format!(
                    "waiting (--wait {}, {} left) for: {}",
                    human(wait),
                    human(left),
                    why.join("; ")
                ));
                said = now;
            }
            if left.is_zero() {
                self.log
                    .line(&format!("the wait ({}) ran out", human(wait)));
                return;
            }
            let mut next = pause.min(left);
            if let Some(t) = safe_after {
                let until = (*t - Utc::now()).to_std().unwrap_or_default();
                next = next.min(until + Duration::from_secs(1));
            }
            std::thread::sleep(next);
            pause = (pause * 3 / 2).min(Duration::from_secs(10));
            let host = ThisHost::new();
            match self.rt.block_on(crate::inspect(cfg, &host)) {
                Ok(r) => {
                    *plan = plan::plan(self.o.asked, Some(&r));
                    *before = Ok(r);
                }
                Err(e) => self
                    .log
                    .line(&format!("cannot re-read the locks while waiting: {e}")),
            }
        }
        if !said.is_empty() {
            let took = clock.elapsed();
            self.log
                .line(&format!("waited {}: the reading now", human(took)));
            self.log_reading(before, "before");
            if let Ok(r) = &*before {
                self.log_locks(r);
            }
        }
    }

    fn inspect(&mut self, cfg: &RepoConfig, when: &str) -> Inspection {
        let host = ThisHost::new();
        let got = self.rt.block_on(crate::inspect(cfg, &host));
        self.log_reading(&got, when);
        got
    }

    /// A reading's counts, peers and gaps (or why it failed), in the log.
    fn log_reading(&mut self, got: &Inspection, when: &str) {
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
                if !r.peers.is_empty() {
                    let asked = crate::peer::ask::summary(&r.peers);
                    self.log.line(&format!("peers {when}: {asked}"));
                }
                if let Some(why) = &r.incomplete {
                    self.log
                        .line(&format!("WARNING: the reading {when} is incomplete: {why}"));
                }
            }
            Err(e) => self
                .log
                .line(&format!("cannot read the locks {when}: {e}; count unknown")),
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
                "  lock {} {} {}@{} pid {} age {}: holder {}{}; restic unlock {plain}; restic unlock --remove-all REMOVES{}",
                crate::restic::short_id(&l.id),
                if l.exclusive { "exclusive" } else { "shared" },
                l.username,
                l.hostname,
                l.pid,
                crate::verdict::human_age(v.age_seconds),
                v.holder.as_str(),
                match (&v.judged_on, &v.peer_error) {
                    (Some(h), _) if *h != r.checked_on => format!(" (judged on {h})"),
                    (_, Some(_)) => " (its host did not answer)".to_string(),
                    _ => String::new(),
                },
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

    /// The locks restic removed ([`plan::removed`]), into serve's history where there is
    /// one: their jobs' records end `removed`.
    fn record(&mut self, outcome: &Outcome) {
        let (Some(place), Some(before), Some(Ok(after))) =
            (&self.o.state, outcome.before(), &outcome.after)
        else {
            return;
        };
        let removed = plan::removed(before, after, self.o.asked.scope);
        if removed.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let written = crate::history::Store::open(&place.dir).and_then(|mut store| {
            store.record_removals(&before.repository_id, &self.shown, &removed, now)?;
            Ok(store.path().display().to_string())
        });
        match written {
            Ok(path) => self.log.line(&format!(
                "history: {} removed lock{} recorded in {path}",
                removed.len(),
                if removed.len() == 1 { "" } else { "s" }
            )),
            Err(e) => self.log.line(&format!("WARNING: history not written: {e}")),
        }
    }

    /// Steps 8 and 9: the result line (and the error log), the finish line.
    fn finish(&mut self, outcome: &Outcome) {
        let code = outcome.exit.code();
        if code == 0 {
            self.log.line("result: success");
        } else {
            self.log
                .line(&format!("result: FAILED with exit code {code}"));
            self.log.copy_to_error_log();
        }
        self.finished = Local::now();
        self.duration = self.clock.elapsed().as_secs();
        let took = audit::human_duration(self.duration);
        self.log.line(&format!("finished in {took}"));
    }

    /// Step 10, in the contract's order: summary, webhook, metrics, mail, post-hook.
    fn artefacts(&mut self, outcome: &Outcome) {
        let code = outcome.exit.code();
        let json = self.summary(outcome);
        deliver_webhook(self, &json, code);
        write_metrics(self, code, outcome.after());
        send_mail(self, code);
        self.hook("post-unlock.sh", &[code.to_string()]);
    }

    /// `last-unlock.json`, written; its text, for the webhook.
    fn summary(&mut self, outcome: &Outcome) -> String {
        let o = self.o;
        let finished = self.finished;
        let detail = outcome.before();
        let summary = Summary {
            hostname: o.hostname.clone(),
            release: o.release.clone(),
            started_at: audit::timestamp(self.started),
            finished_at: audit::timestamp(finished),
            started_epoch: self.started.timestamp(),
            finished_epoch: finished.timestamp(),
            duration_seconds: self.duration,
            repository: self.shown.clone(),
            remove_all: o.asked.scope == Scope::All,
            dry_run: o.asked.dry_run,
            locks_before: count(outcome.before.as_ref()),
            locks_after: outcome.counts_after(),
            exit_code: outcome.exit.code(),
            force: o.asked.force,
            refused: outcome.refused,
            message: self.log.redactor().scrub(&outcome.message),
            locks_stale: detail.map(|r| r.counts.stale),
            locks_unsafe: detail.map(|r| r.counts.unsafe_),
            locks_unreadable: detail.map(|r| r.counts.unreadable),
            restic_command: self.restic_line(),
            restic_version: self.version_text(),
            automatic: o.automatic.clone(),
            locks: detail.map(|r| r.locks.clone()).unwrap_or_default(),
        };
        let json = self.log.redactor().scrub(&summary.render());
        let path = o.log_dir.join(audit::SUMMARY_FILE);
        match audit::write_atomic(&path, json.as_bytes()) {
            Ok(()) => self
                .log
                .line(&format!("summary written to {}", path.display())),
            Err(e) => self
                .log
                .line(&format!("ERROR: cannot write {}: {e}", path.display())),
        }
        json
    }

    fn hook(&mut self, name: &str, args: &[String]) {
        let path = self.o.hook_dir.join(name);
        self.log.line(&format!("running hook {}", path.display()));
        let outcome = hooks::run(&path, args, self.o.hook_timeout);
        self.log.line(&outcome.describe(&path));
    }
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

/// The refusal in a few short lines: what was not run and why, over which locks; when
/// (or whether) waiting makes it safe, or the safe command instead; and exactly what
/// `--force` would do.
fn refusal(r: &Refused, line: &str) -> String {
    let mut out = Vec::new();
    let force = match r.why {
        Refusal::Unseen => {
            out.push(format!(
                "{line} was not run: the locks could not be read, so it would remove locks nobody has seen, a live holder's among them"
            ));
            format!("run {line} over every lock, unseen")
        }
        Refusal::Incomplete { not_read } => {
            out.push(format!(
                "{line} was not run: {not_read} of the entries in locks/ were not read before the deadline, and it could remove a live holder's lock nobody has seen"
            ));
            out.push("give the backend more time: --timeout, --deadline".into());
            format!("run {line} over the {not_read} entries not read")
        }
        Refusal::Unsafe => {
            let what = match r.scope {
                Scope::All => "remove a lock whose holder is alive or cannot be judged from here",
                Scope::StaleOnly => {
                    "remove a live holder's lock, or send its SIGHUP probe to a live process that is not the holder"
                }
            };
            out.push(format!("{line} was not run: it would {what}:"));
            out.extend(r.dangers.iter().map(|d| {
                let short = crate::restic::short_id(&d.id);
                format!("  lock {short} of {}: {}", d.holder, d.brief)
            }));
            out.push(match r.safe_after {
                Some(t) => {
                    let wait = (t - Utc::now()).num_seconds().max(0) + 60;
                    format!(
                        "safe after {}, unless refreshed meanwhile: `unlock --wait {}` waits for it",
                        crate::duration::clock(t),
                        human(Duration::from_secs(wait as u64))
                    )
                }
                None => "waiting makes it safe only once the holder has ended: `unlock --wait DURATION` waits for that".into(),
            });
            let each: Vec<&str> = r.dangers.iter().map(|d| d.force_does.as_str()).collect();
            each.join("; ")
        }
    };
    out.extend(r.instead.clone());
    out.push(format!("nothing was removed; --force would {force}"));
    out.join("\n")
}

/// What a refusal is made of.
struct Refused {
    why: Refusal,
    scope: Scope,
    dangers: Vec<Danger>,
    safe_after: Option<DateTime<Utc>>,
    /// The safe command instead, if there is one.
    instead: Option<String>,
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

fn write_metrics(run: &mut Run, exit_code: i32, after: Option<&Report>) {
    let Some(dir) = &run.o.metrics_dir else {
        return;
    };
    let text = metrics::unlock_run(
        &RunMetrics {
            hostname: run.o.hostname.clone(),
            exit_code,
            duration_seconds: run.duration,
            started_epoch: run.started.timestamp(),
            finished_epoch: run.finished.timestamp(),
        },
        after,
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

fn send_mail(run: &mut Run, exit_code: i32) {
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
        "{status} {} {} \u{b7} {} \u{b7} {}",
        if o.automatic.is_some() {
            "Automatic unlock"
        } else {
            "Unlock"
        },
        o.hostname,
        audit::human_duration(run.duration),
        run.shown
    );
    let settings = o.smtp();
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
