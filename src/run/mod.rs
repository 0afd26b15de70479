//! `locksmith run -- restic ARGS…`: the word a job puts before its restic command. It reads
//! the locks once, runs restic at once when nothing is in the way, waits for live (and
//! unproven) holders, and with `--recover` has proven-dead holders' locks removed through
//! the audited unlock first. Which lock a command takes is [`kind`]; when it may run is
//! [`decide`]; this module is the I/O around them.

pub mod account;
pub mod decide;
pub mod kind;
pub mod tell;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use crate::config::RawRepoOptions;
use crate::exit::Exit;
use crate::process::ThisHost;
use account::Account;
use decide::Decision;
use kind::{Line, Need};
use tell::{Teller, human};

/// What `run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub repo: RawRepoOptions,
    /// The program (restic) and its arguments, passed through untouched.
    pub command: Vec<String>,
    /// The longest the job waits for the locks in its way.
    pub wait: Duration,
    /// Remove proven-dead holders' locks (the audited unlock, stale only).
    pub recover: bool,
    /// The audited unlock a recovery runs (its mail and webhook serve the run's notice).
    pub unlock: crate::unlock::UnlockOptions,
    /// Where the run's gauges go (a node exporter's textfile).
    pub textfile: Option<PathBuf>,
}

/// The first and the longest pause between two readings while waiting.
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(10);
/// The `--retry-lock` added for restic 0.16 and later, where the command line has none:
/// a job that starts between the reading and restic's own lock is waited for by restic.
const RETRY_LOCK: &str = "1m";

/// What `run` works with once it has started: the command, and what it tells.
struct Job<'a> {
    o: &'a RunOptions,
    program: &'a str,
    args: &'a [String],
    line: Line,
    need: Need,
    version: Option<(u32, u32, u32)>,
    teller: Teller,
    account: Account,
    /// Locks the audited unlock has gone for.
    tried: std::collections::HashSet<String>,
}

pub fn run(o: &RunOptions) -> Exit {
    let Some((program, args)) = o.command.split_first() else {
        eprintln!("locksmith run: no command given: locksmith run [OPTIONS] -- restic ARGS…");
        return Exit::Config;
    };
    let line = Line::parse(args);
    let probe = crate::unlock::probe(std::path::Path::new(program));
    let mut teller = Teller::new(o.unlock.state.as_ref());
    if let crate::unlock::Probe::NotFound(why) = &probe {
        teller.say(&crate::unlock::not_found(
            std::path::Path::new(program),
            why,
        ));
        return Exit::NoRestic;
    }
    let version = probe.version();
    let need = line.need(version.map_or((0, 14), |(a, b, _)| (a, b)));
    let mut job = Job {
        o,
        program,
        args,
        line,
        need,
        version,
        teller,
        account: Account::default(),
        tried: Default::default(),
    };
    let exit = crate::runtime().block_on(job.until_done());
    let said = job.account.line(exit, o.wait);
    job.teller.say(&said);
    let command = job.line.command.clone().unwrap_or_default();
    if let Err(e) = job.account.metrics(o, &command, exit) {
        job.teller.say(&format!("metrics: {e}"));
    }
    if exit == Exit::WaitedOut {
        let in_the_way = job.teller.last().to_string();
        for l in job.account.notice(o, &said, &in_the_way) {
            job.teller.say(&l);
        }
    }
    exit
}

impl Job<'_> {
    /// The command line, as the lines name it.
    fn cmd(&self) -> String {
        std::iter::once(self.program)
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads, waits, recovers and runs restic until it ran (its exit), the wait ran out,
    /// or a signal ended the run.
    async fn until_done(&mut self) -> Exit {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return Exit::Other;
        };
        let o = self.o;
        let started = Instant::now();
        let host = ThisHost::new();
        let mut watch = crate::watch::Watch::new(o.repo.clone(), None);
        let mut pause = FIRST_PAUSE;
        loop {
            let decision = match self.need {
                Need::Nothing => Decision::Run,
                _ => match watch.refresh(&host).await {
                    Ok(report) => {
                        let d = decide::decide(self.need, &report, o.recover);
                        if let Decision::Wait {
                            blockers,
                            unreadable,
                        } = &d
                        {
                            let now =
                                tell::in_the_way(blockers, *unreadable, o.recover, &self.cmd());
                            self.teller.waiting(now, blockers, &report.repository_id);
                            let who = blockers.iter().map(|b| b.who.clone());
                            self.account.waited_for.extend(who);
                        }
                        d
                    }
                    Err(e) if started.elapsed() < o.wait => {
                        self.teller.say(&format!("cannot read the locks yet: {e}"));
                        Decision::Wait {
                            blockers: Vec::new(),
                            unreadable: 0,
                        }
                    }
                    Err(e) => {
                        self.teller.say(&e.to_string());
                        return e.exit();
                    }
                },
            };
            let left = o.wait.saturating_sub(started.elapsed());
            match &decision {
                Decision::Run => {
                    self.account.waited = started.elapsed();
                    match self.restic(left, &mut term, &mut int).await {
                        Ran::Exited(code) => return Exit::Restic(code),
                        Ran::Locked(_) if !left.is_zero() => {
                            self.teller
                                .say("restic met a lock taken since the reading: waiting again");
                            continue;
                        }
                        Ran::Locked(code) => return Exit::Restic(code),
                        Ran::NotStarted(why) => {
                            let p = std::path::Path::new(self.program);
                            self.teller.say(&crate::unlock::not_found(p, &why));
                            return Exit::NoRestic;
                        }
                    }
                }
                // A lock the audited unlock already went for and left (restic kept it) is
                // waited for, not gone for again at once.
                Decision::Recover(blockers)
                    if blockers.iter().all(|b| self.tried.contains(&b.id)) =>
                {
                    let now = tell::in_the_way(blockers, 0, o.recover, &self.cmd());
                    let now = format!("{now} (the audited unlock left them: restic kept them)");
                    self.teller.waiting(now, &[], "");
                }
                Decision::Recover(blockers) => match self.recover(blockers).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(exit) => return exit,
                },
                Decision::Wait { .. } => {}
            }
            if left.is_zero() {
                self.account.waited = started.elapsed();
                let last = self.teller.last().to_string();
                self.teller
                    .say(&format!("the wait ran out after {}: {last}", human(o.wait)));
                return Exit::WaitedOut;
            }
            let mut next = jittered(pause).min(left);
            if let Some(at) = decision.next_change() {
                let until = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                next = next.min(until + Duration::from_secs(1));
            }
            pause = (pause * 3 / 2).min(LONGEST_PAUSE);
            self.teller.progress(started.elapsed(), left, next);
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = term.recv() => return Exit::Restic(128 + libc::SIGTERM),
                _ = int.recv() => return Exit::Restic(128 + libc::SIGINT),
            }
        }
    }
    /// The audited unlock (stale only, marked automatic) over proven-dead `blockers`:
    /// whether it removed them; `Err`: the run ends.
    async fn recover(&mut self, blockers: &[decide::Blocker]) -> Result<bool, Exit> {
        let who: Vec<String> = blockers.iter().map(|b| b.who.clone()).collect();
        self.teller.say(&format!(
            "recovering: {} proven dead (gone or reused on its own kernel): the audited unlock runs",
            who.join(", ")
        ));
        self.tried.extend(blockers.iter().map(|b| b.id.clone()));
        let mut unlock = self.o.unlock.clone();
        let what = format!("locksmith run --recover, before `{}`", self.cmd());
        unlock.auto_unlock = format!("ON ({what})");
        unlock.automatic = Some(what);
        match tokio::task::spawn_blocking(move || crate::unlock::run(&unlock)).await {
            Ok(e) if e.code() == 0 => {
                self.account.removed.extend(who);
                Ok(true)
            }
            Ok(other) => {
                self.teller.say(&format!(
                    "the audited unlock ended with exit {} (see its log): waiting",
                    other.code()
                ));
                Ok(false)
            }
            Err(_) => Err(Exit::Other),
        }
    }

    /// restic with its arguments (and a short `--retry-lock` where it has one and none
    /// was given), its stdin and stdout its own, its stderr passed through line by line
    /// while read for restic's lock failure; SIGTERM and SIGINT forwarded.
    async fn restic(
        &mut self,
        left: Duration,
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> Ran {
        let mut args = self.args.to_vec();
        let has_retry = self.version.is_some_and(|v| v >= (0, 16, 0));
        if has_retry && !self.line.retry_lock && !left.is_zero() {
            let at = self.line.at.unwrap_or(0);
            let short = if left < Duration::from_secs(60) {
                format!("{}s", left.as_secs().max(1))
            } else {
                RETRY_LOCK.to_string()
            };
            args.splice(at..at, ["--retry-lock".to_string(), short]);
        }
        let mut cmd = tokio::process::Command::new(self.program);
        cmd.args(&args).stderr(std::process::Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Ran::NotStarted(e.to_string()),
        };
        let pid = child.id().map(|p| p as i32);
        let stderr = child.stderr.take().expect("piped");
        let scan = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            let mut locked = false;
            while let Ok(Some(l)) = lines.next_line().await {
                locked |= l.contains("repository is already locked");
                eprintln!("{l}");
            }
            locked
        });
        let forward = |sig: i32| {
            if let Some(p) = pid {
                // SAFETY: kill(2) on our own child's PID.
                unsafe { libc::kill(p, sig) };
            }
        };
        let mut signalled = None;
        let status = loop {
            tokio::select! {
                s = child.wait() => break s,
                _ = term.recv() => { forward(libc::SIGTERM); signalled = Some(libc::SIGTERM) }
                _ = int.recv() => { forward(libc::SIGINT); signalled = Some(libc::SIGINT) }
            }
        };
        let locked = scan.await.unwrap_or(false);
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
            }),
            Err(e) => return Ran::NotStarted(e.to_string()),
        };
        match (signalled, code) {
            (None, 11) => Ran::Locked(11),
            (None, 1) if locked => Ran::Locked(1),
            (_, c) => Ran::Exited(c),
        }
    }
}

/// A pause between 80 % and 120 % of `d`: jobs started together do not read together.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    d.mul_f64(0.8 + f64::from(nanos % 1000) / 2500.0)
}

/// How restic's run ended.
enum Ran {
    /// Its exit code (128 + the signal that ended it, a forwarded one included).
    Exited(i32),
    /// It failed on a lock (exit 11 from 0.17, or 1 with its message on older releases),
    /// with that exit code.
    Locked(i32),
    NotStarted(String),
}

/// Where the restic arguments name the repository or its password, they win over the
/// environment, as they do for restic.
pub fn repo_from_args(mut raw: RawRepoOptions, args: &[String]) -> RawRepoOptions {
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-r" | "--repo" => raw.repo = value(),
            "--repository-file" => raw.repository_file = value().map(PathBuf::from),
            "-p" | "--password-file" => raw.password_file = value().map(PathBuf::from),
            "--password-command" => raw.password_command = value(),
            "--key-hint" => raw.key_hint = value(),
            "-o" | "--option" => raw.options.extend(value()),
            _ => {}
        }
    }
    raw
}
