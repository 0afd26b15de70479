mod cli;

use clap::Parser;

use locksmith::process::ThisHost;

#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

fn main() {
    locksmith::limit_malloc_arenas();
    // Started as `unlock` (the image's /bin/unlock): behave as `locksmith unlock`.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some("unlock".as_ref()) {
        let cli = cli::UnlockCli::parse();
        std::process::exit(locksmith::unlock::run(&cli.args.to_options(&cli.repo)));
    }
    let cli = cli::Cli::parse();
    if let cli::Command::Unlock(args) = &cli.command {
        std::process::exit(locksmith::unlock::run(&args.to_options(&cli.repo)));
    }
    let code = match run(&cli) {
        Ok(()) => locksmith::exit::OK,
        Err(e) => {
            // Errors quote servers and repositories: nothing they hold may act on a terminal.
            eprintln!(
                "locksmith: {}",
                locksmith::printable::printable(&e.to_string())
            );
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: &cli::Cli) -> Result<(), locksmith::error::Error> {
    let cfg = cli.repo.to_options_asking().resolve()?;
    for k in cfg.ignored_options() {
        eprintln!("locksmith: ignoring -o {k}: locksmith does not use it");
    }
    let runtime = locksmith::runtime();
    match &cli.command {
        cli::Command::Locks(args) => {
            let host = ThisHost::new();
            let report = runtime.block_on(locksmith::inspect(&cfg, &host))?;
            // A closed pipe (`| head`) is not an error worth a message.
            if args.json {
                let _ = report.write_json(std::io::stdout().lock());
            } else {
                let _ = report.write_table(std::io::stdout().lock());
            }
            if let Some(why) = report.incomplete {
                return Err(locksmith::error::Error::Incomplete {
                    repo: cfg.masked.clone(),
                    why,
                });
            }
        }
        cli::Command::Unlock(_) => unreachable!("handled in main"),
    }
    Ok(())
}
