//! `locksmith run -- restic ARGS…`: the word a job puts before its restic command. It reads
//! the locks once, runs restic at once when nothing is in the way, waits for live (and
//! unproven) holders, and with `--recover` has proven-dead holders' locks removed through
//! the audited unlock first. Which lock a command takes is [`kind`]; when it may run is
//! [`decide`]; this module is the I/O around them.

pub mod decide;
pub mod kind;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use crate::config::RawRepoOptions;
use crate::exit::Exit;
use crate::process::ThisHost;
use decide::{Blocker, Decision};
use kind::{Line, Need};

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
    /// The audited unlock a recovery runs.
    pub unlock: crate::unlock::UnlockOptions,
}

/// The first and the longest pause between two readings while waiting.
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const LONGEST_PAUSE: Duration = Duration::from_secs(10);
/// The `--retry-lock` added for restic 0.16 and later, where the command line has none:
/// a job that starts between the reading and restic's own lock is waited for by restic.
const RETRY_LOCK: &str = "1m";

/// How a run went, for its one audit line.
#[derive(Debug, Default)]
struct Account {
    waited: Duration,
    waited_for: BTreeSet<String>,
    removed: Vec<String>,
}

pub fn run(o: &RunOptions) -> Exit {
    let Some((program, args)) = o.command.split_first() else {
        eprintln!("locksmith run: no command given: locksmith run [OPTIONS] -- restic ARGS…");
        return Exit::Config;
    };
    let line = Line::parse(args);
    let version = crate::unlock::restic_version(std::path::Path::new(program));
    let need = line.need(version.map_or((0, 14), |(a, b, _)| (a, b)));
    let rt = crate::runtime();
    let mut account = Account::default();
    let exit = rt.block_on(until_done(
        o,
        program,
        args,
        &line,
        need,
        version,
        &mut account,
    ));
    let removed = match account.removed.len() {
        0 => "removed nothing".to_string(),
        n => format!(
            "removed {n} dead holder's lock{}",
            if n == 1 { "" } else { "s" }
        ),
    };
    let waited = match account.waited_for.is_empty() {
        true => "did not wait".to_string(),
        false => format!(
            "waited {} for {}",
            human(account.waited),
            account
                .waited_for
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let ended = match exit {
        Exit::Restic(c) => format!("restic exited {c}"),
        Exit::Ok => "restic exited 0".into(),
        Exit::WaitedOut => format!("the wait ({}) ran out; restic did not run", human(o.wait)),
        other => format!("restic did not run (exit {})", other.code()),
    };
    say(&format!("{waited}; {removed}; {ended}"));
    exit
}

fn human(d: Duration) -> String {
    crate::duration::human(d.as_secs() as i64, crate::duration::Style::Contract)
}

fn say(line: &str) {
    eprintln!("locksmith run: {}", crate::printable::printable(line));
}

/// Reads, waits, recovers and runs restic until it ran (its exit), the wait ran out, or a
/// signal ended the run.
async fn until_done(
    o: &RunOptions,
    program: &str,
    args: &[String],
    line: &Line,
    need: Need,
    version: Option<(u32, u32, u32)>,
    account: &mut Account,
) -> Exit {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return Exit::Other;
    };
    let started = Instant::now();
    let host = ThisHost::new();
    let mut watch = crate::watch::Watch::new(o.repo.clone(), None);
    let mut pause = FIRST_PAUSE;
    let mut said = String::new();
    loop {
        let decision = match need {
            Need::Nothing => Decision::Run,
            _ => match watch.refresh(&host).await {
                Ok(report) => decide::decide(need, &report, o.recover),
                Err(e) if started.elapsed() < o.wait => {
                    say(&format!("cannot read the locks yet: {e}"));
                    Decision::Wait {
                        blockers: Vec::new(),
                        unreadable: 0,
                    }
                }
                Err(e) => {
                    say(&e.to_string());
                    return e.exit();
                }
            },
        };
        let left = o.wait.saturating_sub(started.elapsed());
        match &decision {
            Decision::Run => {
                account.waited = started.elapsed();
                let got = restic(program, args, line, version, left, &mut term, &mut int).await;
                match got {
                    Ran::Exited(code) => return Exit::Restic(code),
                    Ran::Locked(_) if !left.is_zero() => {
                        say("restic met a lock taken since the reading: waiting again");
                        continue;
                    }
                    Ran::Locked(code) => return Exit::Restic(code),
                    Ran::NotStarted(why) => {
                        say(&format!("cannot run {program}: {why}"));
                        return Exit::Other;
                    }
                }
            }
            Decision::Recover(blockers) => {
                let who: Vec<String> = blockers.iter().map(|b| b.who.clone()).collect();
                say(&format!(
                    "recovering: {} proven dead (gone or reused on its own kernel): the audited unlock runs",
                    who.join(", ")
                ));
                let unlock = o.unlock.clone();
                let done = tokio::task::spawn_blocking(move || crate::unlock::run(&unlock)).await;
                match done {
                    Ok(e) if e.code() == 0 => {
                        account.removed.extend(who);
                        continue;
                    }
                    Ok(other) => say(&format!(
                        "the audited unlock ended with exit {}: waiting",
                        other.code()
                    )),
                    Err(_) => return Exit::Other,
                }
            }
            Decision::Wait {
                blockers,
                unreadable,
            } => {
                account
                    .waited_for
                    .extend(blockers.iter().map(|b| b.who.clone()));
                let now = waiting(blockers, *unreadable, o.recover, program, args);
                if now != said {
                    say(&now);
                    said = now;
                }
            }
        }
        if left.is_zero() {
            account.waited = started.elapsed();
            say(&format!("the wait ran out after {}: {said}", human(o.wait)));
            return Exit::WaitedOut;
        }
        let mut next = jittered(pause).min(left);
        if let Some(at) = decision.next_change() {
            let until = (at - chrono::Utc::now()).to_std().unwrap_or_default();
            next = next.min(until + Duration::from_secs(1));
        }
        pause = (pause * 3 / 2).min(LONGEST_PAUSE);
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = term.recv() => return Exit::Restic(128 + libc::SIGTERM),
            _ = int.recv() => return Exit::Restic(128 + libc::SIGINT),
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

/// The waiting line: what is in the way, and what would clear it.
fn waiting(
    blockers: &[Blocker],
    unreadable: usize,
    recover: bool,
    program: &str,
    args: &[String],
) -> String {
    let cmd = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut parts: Vec<String> = blockers
        .iter()
        .map(|b| {
            let state = match (b.dead, b.removable) {
                (false, _) => match b.holder {
                    crate::verdict::Holder::Alive => "alive",
                    crate::verdict::Holder::Unknown => {
                        "cannot be judged from here (run `locksmith agent` on its host and pass --peer)"
                    }
                    _ => "gone here, but not proven dead (see `locksmith locks`)",
                },
                (true, true) if recover => "dead",
                (true, true) => "dead: --recover would remove it",
                (true, false) => "dead, but restic keeps it yet",
            };
            let after = match (b.dead, b.removable, b.safe_after) {
                (true, false, Some(t)) => format!(", removable after {}", t.format("%H:%M:%S UTC")),
                _ => String::new(),
            };
            format!("{}: {state}{after}", b.who)
        })
        .collect();
    if unreadable > 0 {
        parts.push(format!(
            "{unreadable} unreadable entr{} of locks/ (see `locksmith locks`)",
            if unreadable == 1 { "y" } else { "ies" }
        ));
    }
    format!("`{cmd}` waits for {}", parts.join("; "))
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

/// restic with its arguments (and a short `--retry-lock` where it has one and none was
/// given), its stdin and stdout its own, its stderr passed through line by line while
/// read for restic's lock failure; SIGTERM and SIGINT forwarded.
async fn restic(
    program: &str,
    args: &[String],
    line: &Line,
    version: Option<(u32, u32, u32)>,
    left: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Ran {
    let mut args = args.to_vec();
    let has_retry = version.is_some_and(|v| v >= (0, 16, 0));
    if has_retry && !line.retry_lock && !left.is_zero() {
        let at = line.at.unwrap_or(0);
        let short = if left < Duration::from_secs(60) {
            format!("{}s", left.as_secs().max(1))
        } else {
            RETRY_LOCK.to_string()
        };
        args.splice(at..at, ["--retry-lock".to_string(), short]);
    }
    let mut cmd = tokio::process::Command::new(program);
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
