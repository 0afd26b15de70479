mod cli;

use clap::Parser;

use locksmith::exit::Exit;
use locksmith::process::ThisHost;

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
        let cli = cli::Cli::parse();
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
            (None, Some(cli::Command::Locks(args))) => match locks(&cli.repo, args, cli.color) {
                Ok(exit) => exit,
                Err(e) => {
                    // Errors quote servers and repositories: nothing they hold may act on a
                    // terminal.
                    eprintln!(
                        "locksmith: {}",
                        locksmith::printable::printable(&e.to_string())
                    );
                    e.exit()
                }
            },
        }
    };
    std::process::exit(exit.code());
}

fn locks(
    repo: &cli::RepoArgs,
    args: &cli::LocksArgs,
    color: cli::ColorWhen,
) -> Result<Exit, locksmith::error::Error> {
    let cfg = repo.to_options_asking().resolve()?;
    for k in cfg.ignored_options() {
        eprintln!("locksmith: ignoring -o {k}: locksmith does not use it");
    }
    let host = ThisHost::new();
    let report = locksmith::runtime().block_on(locksmith::inspect(&cfg, &host))?;
    // A closed pipe (`| head`) is not an error worth a message.
    if args.json {
        let _ = report.write_json(std::io::stdout().lock());
    } else {
        let out = anstream::AutoStream::new(std::io::stdout().lock(), color.choice());
        let _ = report.write_table(out);
    }
    if let Some(why) = report.incomplete.clone() {
        return Err(locksmith::error::Error::Incomplete {
            repo: cfg.masked.clone(),
            why,
        });
    }
    let held = args.fail_on.iter().any(|c| report.holds(c.condition()));
    Ok(if held { Exit::Condition } else { Exit::Ok })
}
