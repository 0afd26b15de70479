mod cli;

use clap::Parser;

use std::io::Write;
use std::time::Instant;

use locksmith::error::Error;
use locksmith::exit::Exit;
use locksmith::process::ThisHost;
use locksmith::report::Report;
use locksmith::serve::Status;

#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

fn main() {
    locksmith::limit_malloc_arenas();
    // Started as `unlock` (the image's /bin/unlock): behave as `locksmith unlock`.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let exit = if std::path::Path::new(&argv0).file_name() == Some("unlock".as_ref()) {
        let cli = cli::UnlockCli::parse();
        locksmith::unlock::run(&cli.args.to_options(&cli.repo))
    } else {
        let cli = cli::parse();
        match (&cli.generate, &cli.command) {
            (Some(kind), _) => match cli::generate(*kind, &mut std::io::stdout().lock()) {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!("locksmith: --generate: {e}");
                    Exit::Other
                }
            },
            (None, None) => {
                use clap::CommandFactory;
                eprint!("{}", cli::Cli::command().render_help());
                Exit::Config
            }
            (None, Some(cli::Command::Unlock(args))) => {
                locksmith::unlock::run(&args.to_options(&cli.repo))
            }
            (None, Some(cli::Command::Locks(args))) => locks(&cli.repo, args, cli.color),
            (None, Some(cli::Command::Serve(args))) => serve(&cli.repo, args),
        }
    };
    std::process::exit(exit.code());
}

/// Errors quote servers and repositories: nothing they hold may act on a terminal.
fn complain(e: &dyn std::fmt::Display) {
    eprintln!(
        "locksmith: {}",
        locksmith::printable::printable(&e.to_string())
    );
}

fn serve(repo: &cli::RepoArgs, args: &cli::ServeArgs) -> Exit {
    use locksmith::serve::{ServeOptions, Source};
    let source = match &args.fleet.config {
        Some(path) => Source::File {
            path: path.clone(),
            env: cli::backend_env(),
            interval: std::time::Duration::from_secs(args.interval),
        },
        None => Source::One {
            options: Box::new(repo.to_options()),
            interval: std::time::Duration::from_secs(args.interval),
        },
    };
    locksmith::serve::run(&ServeOptions {
        listen: args.listen,
        source,
    })
}

fn locks(repo: &cli::RepoArgs, args: &cli::LocksArgs, color: cli::ColorWhen) -> Exit {
    let (exit, statuses) = match &args.fleet.config {
        Some(path) => fleet_locks(path, args, color),
        None => one_locks(repo, args, color),
    };
    let Some(path) = &args.textfile else {
        return exit;
    };
    let text = locksmith::serve::metrics::render(&statuses);
    match locksmith::audit::write_atomic(path, text.as_bytes()) {
        Ok(()) => exit,
        Err(e) => {
            eprintln!("locksmith: --textfile {}: {e}", path.display());
            if exit == Exit::Ok { Exit::Other } else { exit }
        }
    }
}

fn print_report(report: &Report, args: &cli::LocksArgs, color: cli::ColorWhen) {
    // A closed pipe (`| head`) is not an error worth a message.
    if args.json {
        let _ = report.write_json(std::io::stdout().lock());
    } else {
        let out = anstream::AutoStream::new(std::io::stdout().lock(), color.choice());
        let _ = report.write_table(out);
    }
}

fn one_locks(
    repo: &cli::RepoArgs,
    args: &cli::LocksArgs,
    color: cli::ColorWhen,
) -> (Exit, Vec<Status>) {
    let started = Instant::now();
    let cfg = match repo.to_options_asking().resolve() {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return (Exit::Config, Vec::new());
        }
    };
    for k in cfg.backend.ignored_options() {
        let scheme = cfg.backend.location.scheme();
        eprintln!(
            "locksmith: ignoring -o {k}: locksmith does not use it for a {scheme} repository"
        );
    }
    let host = ThisHost::new();
    let got = locksmith::runtime().block_on(locksmith::inspect(&cfg, &host));
    let took = started.elapsed().as_secs_f64();
    let name = cfg.masked.as_str();
    let report = match got {
        Ok(r) => r,
        Err(e) => {
            complain(&e);
            return (
                e.exit(),
                vec![Status::of_run(name, Err(e.to_string()), took)],
            );
        }
    };
    print_report(&report, args, color);
    let exit = match report.incomplete.clone() {
        Some(why) => {
            let e = Error::Incomplete {
                repo: cfg.masked.clone(),
                why,
            };
            complain(&e);
            e.exit()
        }
        None => judge(&report, args),
    };
    (exit, vec![Status::of_run(name, Ok(report), took)])
}

fn judge(report: &Report, args: &cli::LocksArgs) -> Exit {
    let held = args.fail_on.iter().any(|c| report.holds(*c));
    if held { Exit::Condition } else { Exit::Ok }
}

/// Every repository of a fleet file; the exit code is the worst of them (an error over a
/// condition over success; the first error's code among errors).
fn fleet_locks(
    path: &std::path::Path,
    args: &cli::LocksArgs,
    color: cli::ColorWhen,
) -> (Exit, Vec<Status>) {
    let members = match locksmith::fleet::load(
        path,
        &cli::backend_env(),
        locksmith::fleet::DEFAULT_INTERVAL,
    ) {
        Ok(m) => m,
        Err(e) => {
            complain(&e);
            return (Exit::Config, Vec::new());
        }
    };
    let started = Instant::now();
    let host = ThisHost::new();
    let results = locksmith::runtime().block_on(locksmith::inspect_fleet(&members, &host));
    let took = started.elapsed().as_secs_f64();
    let mut exit = Exit::Ok;
    let rank = |e: Exit| match e {
        Exit::Ok => 0,
        Exit::Condition => 1,
        _ => 2,
    };
    let mut statuses = Vec::new();
    for (m, got) in members.iter().zip(results) {
        let this = match &got {
            Ok(r) if r.incomplete.is_some() => Exit::Other,
            Ok(r) => judge(r, args),
            Err(e) => {
                complain(&format!("{}: {e}", m.name));
                e.exit()
            }
        };
        if rank(this) > rank(exit) {
            exit = this;
        }
        statuses.push(Status::of_run(
            &m.name,
            got.map_err(|e| e.to_string()),
            took,
        ));
    }
    if args.json {
        let doc = locksmith::serve::Document {
            repositories: statuses
                .iter()
                .map(locksmith::serve::RepositoryJson::of)
                .collect(),
        };
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &doc);
        let _ = writeln!(out);
    } else {
        for (i, s) in statuses.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("== {} ==", locksmith::printable::printable(&s.name));
            match (&s.report, &s.error) {
                (Some(r), _) => print_report(r, args, color),
                (None, e) => println!(
                    "cannot read: {}",
                    locksmith::printable::printable(e.as_deref().unwrap_or_default())
                ),
            }
        }
    }
    (exit, statuses)
}
