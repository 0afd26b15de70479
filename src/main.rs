mod cli;

use clap::Parser;

use locksmith::exit::Exit;

#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

fn main() {
    locksmith::limit_malloc_arenas();
    // Started as `unlock` (the image's /bin/unlock): behave as `locksmith unlock`.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let exit = if std::path::Path::new(&argv0).file_name() == Some("unlock".as_ref()) {
        let mut cli = cli::UnlockCli::parse();
        cli.repo.apply_to_process();
        match cli.repo.resolve_peers() {
            Ok(()) => locksmith::unlock::run(&cli.args.to_options(&cli.repo)),
            Err(e) => config_error(&e),
        }
    } else {
        dispatch(cli::parse())
    };
    std::process::exit(exit.code());
}

fn config_error(e: &dyn std::fmt::Display) -> Exit {
    eprintln!(
        "locksmith: {}",
        locksmith::printable::printable(&e.to_string())
    );
    Exit::Config
}

fn dispatch(mut cli: cli::Cli) -> Exit {
    cli.repo.apply_to_process();
    if let Err(e) = cli.repo.resolve_peers() {
        return config_error(&e);
    }
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
        (None, Some(cli::Command::Locks(args))) => {
            let req = args.to_request(cli.color);
            match &args.fleet.config {
                Some(path) => {
                    let defaults = cli.repo.fleet_defaults(locksmith::fleet::DEFAULT_INTERVAL);
                    locksmith::oneshot::fleet(path, &cli::backend_env(), defaults, &req)
                }
                None => locksmith::oneshot::one(&cli.repo.to_options_asking(), &req),
            }
        }
        (None, Some(cli::Command::History(args))) => locksmith::history::run(
            args.state.place(),
            args.since,
            args.name.as_deref(),
            args.json,
        ),
        (None, Some(cli::Command::Run(args))) => locksmith::run::run(&args.to_options(&cli.repo)),
        (None, Some(cli::Command::Agent(args))) => locksmith::serve::agent::run(&args.to_options()),
        (None, Some(cli::Command::Serve(args))) => {
            locksmith::serve::run(&args.to_options(&cli.repo))
        }
    }
}
