//! `locksmith locks`: one repository or a fleet file, read once, printed, and the exit
//! code the run ends with (a fleet's is [`crate::exit::merge`] of its members').

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::RawRepoOptions;
use crate::error::Error;
use crate::exit::{self, Exit};
use crate::fleet;
use crate::printable::printable;
use crate::process::ThisHost;
use crate::report::{Condition, Document, Report, Status, metrics};

/// What `locks` was asked to show, and when to fail.
#[derive(Debug, Clone)]
pub struct Request {
    pub json: bool,
    pub fail_on: Vec<Condition>,
    /// Also write the Prometheus exposition here (node_exporter's textfile collector).
    pub textfile: Option<PathBuf>,
    pub color: anstream::ColorChoice,
}

/// Errors quote servers and repositories: nothing they hold may act on a terminal.
pub fn complain(e: &dyn std::fmt::Display) {
    eprintln!("locksmith: {}", printable(&e.to_string()));
}

/// One repository, from the usual options.
pub fn one(options: &RawRepoOptions, req: &Request) -> Exit {
    let started = Instant::now();
    let cfg = match options.resolve() {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return Exit::Config;
        }
    };
    warn_ignored(&cfg, "");
    let got = crate::runtime().block_on(crate::inspect(&cfg, &ThisHost::new()));
    if let Ok(r) = &got {
        print_report(r, req);
    }
    let exit = judge(&got, req, "");
    let status = Status::of_run(cfg.masked.as_str(), got, started.elapsed().as_secs_f64());
    textfile(req, &[status], exit)
}

/// Every repository of a fleet file, read at once (keys derived concurrently).
pub fn fleet(
    path: &Path,
    env: &BTreeMap<String, String>,
    defaults: fleet::Defaults,
    req: &Request,
) -> Exit {
    let members = match fleet::load(path, env, defaults) {
        Ok(m) => m,
        Err(e) => {
            complain(&e);
            return Exit::Config;
        }
    };
    let host = ThisHost::new();
    let read = crate::runtime().block_on(futures::future::join_all(
        members.iter().map(|m| read_member(m, &host)),
    ));
    let mut exits = Vec::new();
    let mut statuses = Vec::new();
    for (m, (got, took)) in members.iter().zip(read) {
        exits.push(judge(&got, req, &m.name));
        statuses.push(Status::of_run(&m.name, got, took));
    }
    print_fleet(&statuses, req);
    textfile(req, &statuses, exit::merge(exits))
}

/// One member, timed on its own.
async fn read_member(m: &fleet::Member, host: &ThisHost) -> (Result<Report, Error>, f64) {
    let started = Instant::now();
    // Off the runtime: one member's password command must not hold the others.
    let options = m.options.clone();
    let resolved = tokio::task::spawn_blocking(move || options.resolve())
        .await
        .unwrap_or(Err(crate::config::ConfigError::PasswordCommand(
            "stopped".into(),
        )));
    let got = match resolved {
        Ok(cfg) => {
            warn_ignored(&cfg, &format!("{}: ", m.name));
            crate::inspect_showing(&cfg, host, false).await
        }
        Err(e) => Err(e.into()),
    };
    (got, started.elapsed().as_secs_f64())
}

/// `-o` keys the repository's backend does not use, named once per repository.
fn warn_ignored(cfg: &crate::config::RepoConfig, name: &str) {
    let scheme = cfg.backend.location.scheme();
    for k in cfg.backend.ignored_options() {
        eprintln!(
            "locksmith: {name}ignoring -o {k}: locksmith does not use it for a {scheme} repository"
        );
    }
}

/// How one reading ends: its error's code, 1 when incomplete, 3 when a `--fail-on`
/// condition holds. Says why on stderr; `name` prefixes a fleet member's message.
fn judge(got: &Result<Report, Error>, req: &Request, name: &str) -> Exit {
    let fail = |e: &Error| {
        complain(&format!(
            "{name}{}{e}",
            if name.is_empty() { "" } else { ": " }
        ));
        e.exit()
    };
    match got {
        Err(e) => fail(e),
        Ok(r) => match &r.incomplete {
            Some(why) => fail(&Error::Incomplete {
                repo: crate::location::Masked::new(&r.repository),
                why: why.clone(),
            }),
            None if req.fail_on.iter().any(|c| r.holds(*c)) => Exit::Condition,
            None => Exit::Ok,
        },
    }
}

fn print_report(report: &Report, req: &Request) {
    // A closed pipe (`| head`) is not an error worth a message.
    if req.json {
        let _ = report.write_json(std::io::stdout().lock());
    } else {
        let out = anstream::AutoStream::new(std::io::stdout().lock(), req.color);
        let _ = report.write_table(out);
    }
}

fn print_fleet(statuses: &[Status], req: &Request) {
    if req.json {
        let _ = std::io::stdout()
            .lock()
            .write_all(Document::of(statuses).render().as_bytes());
        return;
    }
    for (i, s) in statuses.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("== {} ==", printable(&s.name));
        match (&s.report, s.error_text()) {
            (Some(r), _) => print_report(r, req),
            (None, e) => println!("cannot read: {}", printable(&e.unwrap_or_default())),
        }
    }
}

/// `--textfile`: the exposition written; a failure to write it fails a run that worked.
fn textfile(req: &Request, statuses: &[Status], exit: Exit) -> Exit {
    let Some(path) = &req.textfile else {
        return exit;
    };
    let text = metrics::repositories(statuses, None);
    match crate::audit::write_atomic(path, text.as_bytes()) {
        Ok(()) => exit,
        Err(e) => {
            eprintln!("locksmith: --textfile {}: {e}", path.display());
            if exit == Exit::Ok { Exit::Other } else { exit }
        }
    }
}
