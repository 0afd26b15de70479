//! Command-line syntax. Turned into the engine's plain configuration right away.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use locksmith::config::RawRepoOptions;
use locksmith::exit::{For, help_table};
use locksmith::report::Condition;
use locksmith::secret::Secret;

const PASSWORD_NOTE: &str = "\
The password comes from --password-command, --password-file or RESTIC_PASSWORD, as
restic takes them; without any, it is asked for on the terminal, or read as the first
line of standard input when that is not a terminal.";

const UNLOCK_NOTE: &str = "\
Inspects the locks, then runs `restic unlock` (stale locks only) or
`restic unlock --remove-all`, and writes the audit trail: unlock-last.log,
unlock-error-last.log, unlock-mail-last.log and last-unlock.json in the log
directory, restic_unlock.prom in METRICS_DIR, mail to MAILX_RCPT, a POST to
WEBHOOK_URL, and the hooks pre-unlock.sh and post-unlock.sh <exit code>.

Environment: RESTIC_REPOSITORY(_FILE), RESTIC_PASSWORD(_FILE|_COMMAND),
RESTIC_CACERT, RESTIC_BIN, RESTIC_BACKUP_HELPER_RELEASE, RESTIC_AUTO_UNLOCK,
HOSTNAME, TZ, LOG_VERBOSE, HOOK_TIMEOUT, METRICS_DIR, MAILX_RCPT,
MAILX_ON_ERROR, SMTP_HOST, SMTP_PORT, SMTP_TLS, SMTP_USER, SMTP_PASSWORD,
SMTP_FROM (else MSMTP_CONFIG, default /etc/msmtprc), WEBHOOK_URL,
WEBHOOK_HEADER_AUTH, WEBHOOK_TIMEOUT, WEBHOOK_ON_ERROR.";

const LOCKS_EXAMPLES: &str = "\
Examples:
  locksmith -r /srv/restic-repo -p /etc/restic/pw locks
  locksmith -r rest:https://backup-host:8000/repo/ locks --json --fail-on unsafe,unreadable
  locksmith locks --config /etc/locksmith/locksmith.toml --textfile /var/lib/prometheus/node-exporter/restic_locks.prom
  locksmith locks --peer hostb=https://hostb:9857     # hostb's locks judged on hostb (locksmith agent there)";

const SERVE_EXAMPLES: &str = "\
Examples:
  locksmith -r /srv/restic-repo -p /etc/restic/pw serve          # http://127.0.0.1:9856/
  locksmith serve --config /etc/locksmith/locksmith.toml --listen 0.0.0.0:9856
  kill -HUP $(pidof locksmith)                                   # re-read the --config file";

const SERVE_NOTE: &str = "\
Each repository is refreshed in the background every interval (give or take a tenth):
the key is derived once and kept, and only lock files not seen before are read. The
endpoints answer from the last state at once: /metrics (Prometheus), /locks (JSON),
/ (a status page) and /healthz. SIGHUP re-reads the --config file; SIGTERM and SIGINT
stop the server.";

const UNLOCK_EXAMPLES: &str = "\
Examples:
  unlock --dry-run                      # who holds what, and what restic unlock would do
  unlock                                # refused if a live holder would lose its lock
  locksmith unlock --remove-all --log-dir /tmp/unlock-logs";

/// `--help`'s closing text: the notes, examples, then the exit codes generated from the
/// one type.
fn after_help(note: &str, examples: &str, cmd: For) -> String {
    format!("{note}\n\n{examples}\n\n{}", help_table(cmd))
}

#[derive(Debug, Parser)]
#[command(
    name = "locksmith",
    version,
    about = "Reads a restic repository's locks and tells which are stale, who holds them and whether removing them is safe.",
    after_help = after_help(PASSWORD_NOTE, LOCKS_EXAMPLES, For::Locks)
)]
pub struct Cli {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// When to colour the table: `auto` on a terminal unless NO_COLOR is set
    /// (CLICOLOR_FORCE forces it).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ColorWhen::Auto, global = true)]
    pub color: ColorWhen,
    /// Print the man page or a shell's completions, made from these very options, and exit.
    #[arg(long, value_name = "KIND", value_enum)]
    pub generate: Option<Generate>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    pub fn choice(self) -> anstream::ColorChoice {
        match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        }
    }
}

/// The command line, with `--version` saying which scrypt engine this CPU runs fastest
/// (timed only when asked: the engines are timed at the first derivation otherwise).
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if std::env::args_os().any(|a| a == "--version") {
        let long = format!(
            "{} (scrypt: {})",
            env!("CARGO_PKG_VERSION"),
            locksmith::restic::scrypt::Engine::chosen().name()
        );
        cmd = cmd.long_version(&*Box::leak(long.into_boxed_str()));
    }
    let matches = cmd.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// What `--generate` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// The man page (roff), with the exit codes and the environment.
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
}

/// Writes what `kind` asks for, generated from the clap definition itself.
pub fn generate(kind: Generate, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut cmd = Cli::command();
    let shell = match kind {
        Generate::Man => return man_page(cmd, out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "locksmith", out);
    Ok(())
}

/// clap_mangen's page, then the exit codes of each command and the environment.
fn man_page(cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let env: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| {
            let var = a.get_env()?.to_string_lossy().into_owned();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            Some(format!(".TP\n\\fB{var}\\fR\n{help}\n"))
        })
        .collect();
    clap_mangen::Man::new(cmd).render(out)?;
    let table = |c: For| {
        help_table(c)
            .lines()
            .skip(1)
            .map(|l| {
                let (code, what) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
                format!(".TP\n\\fB{code}\\fR\n{}\n", what.trim().replace('-', "\\-"))
            })
            .collect::<String>()
    };
    write!(
        out,
        ".SH \"EXIT STATUS\"\n.SS locks\n{}.SS unlock\n{}.SH ENVIRONMENT\n{}.TP\n\\fBRESTIC_PASSWORD\\fR\nThe repository password, as restic takes it.\n.TP\n\\fBRESTIC_CACERT\\fR\nExtra CA certificates (PEM files, comma\\-separated) for every backend.\n.PP\nunlock reads the audit contract's variables too: see \\fBlocksmith unlock \\-\\-help\\fR.\n",
        table(For::Locks),
        table(For::Unlock),
        env.concat()
    )
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and classify every lock (read-only; takes no lock).
    #[command(after_help = after_help(PASSWORD_NOTE, LOCKS_EXAMPLES, For::Locks))]
    Locks(LocksArgs),
    /// The audited unlock: inspect, refuse what is unsafe, run `restic unlock`, log.
    #[command(after_help = after_help(UNLOCK_NOTE, UNLOCK_EXAMPLES, For::Unlock))]
    Unlock(UnlockArgs),
    /// Watch one repository or a fleet: Prometheus metrics, JSON and a status page.
    #[command(after_help = format!("{SERVE_NOTE}\n\n{SERVE_EXAMPLES}"))]
    Serve(ServeArgs),
    /// What serve's history holds: each job's span, and per repository how long exclusive
    /// locks were held (for sizing --retry-lock and schedules).
    #[command(after_help = HISTORY_EXAMPLES)]
    History(HistoryArgs),
    /// Answer other hosts' locksmith about this host's processes, so that they can judge
    /// the locks held here (no repository, no password).
    #[command(after_help = AGENT_EXAMPLES)]
    Agent(AgentArgs),
    /// Run a restic command once the locks in its way are gone: wait for live holders,
    /// and with --recover clear proven-dead ones through the audited unlock.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
}

const RUN_EXAMPLES: &str = "Examples:
  locksmith run -- restic backup /data
  locksmith run --wait 3h --recover -- restic forget --keep-daily 7 --prune

Exit codes: restic's own when it ran; 21 when the wait ran out (a live or unproven holder
in the way); 2 for a configuration error.";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The longest to wait for the locks in the way (m, h, d, w: 30m, 3h).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = wait_parser)]
    pub wait: std::time::Duration,
    /// Clear locks whose holders are proven dead (the audited unlock, stale locks only)
    /// before running; never a live or unproven holder's.
    #[arg(long, env = "LOCKSMITH_RECOVER", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new(), hide_env_values = true)]
    pub recover: bool,
    /// Write the run's gauges (waited seconds, recoveries, exit code) to FILE, for node
    /// exporter's textfile collector: one file per job.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
    /// A recovery's audit trail, as unlock's.
    #[command(flatten)]
    pub audit: AuditArgs,
    /// restic and its arguments, after `--`: passed through untouched.
    #[arg(last = true, required = true, value_name = "RESTIC ARGS")]
    pub command: Vec<String>,
}

fn wait_parser(s: &str) -> Result<std::time::Duration, String> {
    locksmith::duration::parse_age(s)?
        .to_std()
        .map_err(|_| format!("{s:?}: not a wait"))
}

impl RunArgs {
    pub fn to_options(&self, repo: &RepoArgs) -> locksmith::run::RunOptions {
        use locksmith::unlock::{Asked, Scope};
        let args = self.command.get(1..).unwrap_or_default();
        let raw = locksmith::run::repo_from_args(repo.to_options(), args);
        let asked = Asked {
            scope: Scope::StaleOnly,
            dry_run: false,
            force: false,
        };
        let mut unlock = self.audit.unlock(raw.clone(), asked);
        if let Some(program) = self.command.first() {
            unlock.restic_bin = program.into();
        }
        locksmith::run::RunOptions {
            repo: raw,
            command: self.command.clone(),
            wait: self.wait,
            recover: self.recover,
            unlock,
            textfile: self.textfile.clone(),
        }
    }
}

const AGENT_EXAMPLES: &str = "Examples:
  locksmith agent                                   loopback only (127.0.0.1:9857)
  locksmith agent --listen 0.0.0.0:9857 --web-config web.yml
  # on the other host:
  locksmith locks --peer backup-b=https://backup-b:9857

The agent must see the processes of the backup jobs: run it on the host, or in a
container that shares the backup container's PID namespace (compose: pid: \"service:backup\").";

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to listen on; beyond loopback only when you say so.
    #[arg(long, value_name = "ADDR", env = "LOCKSMITH_AGENT_LISTEN", default_value = locksmith::serve::agent::DEFAULT_AGENT_LISTEN, hide_env_values = true)]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub web: WebArgs,
}

/// The listener's security, the same for serve and agent.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// An exporter web configuration (Prometheus exporter-toolkit's YAML): TLS, client
    /// certificates, basic auth users (bcrypt), response headers.
    #[arg(
        long,
        value_name = "FILE",
        env = "LOCKSMITH_WEB_CONFIG",
        hide_env_values = true
    )]
    pub web_config: Option<PathBuf>,
    /// Host names the endpoints answer for, besides IP literals, `localhost` and this
    /// host's name (against DNS rebinding); `*` for any.
    #[arg(
        long,
        value_name = "HOST,…",
        value_delimiter = ',',
        env = "LOCKSMITH_ALLOWED_HOSTS",
        hide_env_values = true
    )]
    pub allowed_hosts: Vec<String>,
}

impl AgentArgs {
    pub fn to_options(&self) -> locksmith::serve::agent::AgentOptions {
        locksmith::serve::agent::AgentOptions {
            listen: self.listen,
            web_config: self.web.web_config.clone(),
            allowed_hosts: self.web.allowed_hosts.clone(),
        }
    }
}

const HISTORY_EXAMPLES: &str = "Examples:
  locksmith history                       the last 7 days, every repository
  locksmith history --since 30d --json    a month, as JSON
  locksmith history --state-dir /var/lib/locksmith --name nas";

/// Where the history is kept: `serve` writes it, `history` reads it, `unlock` records
/// its removals in it.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The state directory [default: systemd's STATE_DIRECTORY, else
    /// $XDG_STATE_HOME/locksmith, else ~/.local/state/locksmith].
    #[arg(
        long,
        value_name = "DIR",
        env = "LOCKSMITH_STATE_DIR",
        hide_env_values = true
    )]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    pub fn place(&self) -> Option<locksmith::history::Place> {
        locksmith::history::locate(self.state_dir.as_deref(), &|k| std::env::var(k).ok())
    }
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// How far back (e.g. 24h, 7d, 30d).
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = locksmith::duration::parse_age)]
    pub since: chrono::Duration,
    /// One repository, by the name serve shows it under.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The history as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; beyond loopback only when you say so.
    #[arg(long, value_name = "ADDR", env = "LOCKSMITH_LISTEN", default_value = locksmith::serve::DEFAULT_LISTEN, hide_env_values = true)]
    pub listen: std::net::SocketAddr,
    /// Seconds between two refreshes of a repository (with --config, where the file sets
    /// no `interval`).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    #[command(flatten)]
    pub fleet: FleetArg,
    #[command(flatten)]
    pub web: WebArgs,
    /// Requests answered at once; more get 503.
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests: u64,
    /// Connections open at once (default: what the open-files limit leaves room for).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Seconds a client has to send a request's headers, and the longest a connection may
    /// wait idle between requests.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    #[command(flatten)]
    pub state: StateArgs,
    /// Keep no history: nothing is written to disk, and a restart starts afresh.
    #[arg(long)]
    pub no_history: bool,
    /// Do not answer other hosts' questions about this host's processes (/api/v1/host):
    /// their locks written here are then `unknown` there.
    #[arg(long)]
    pub no_agent: bool,
    /// Days a job's record is kept after it ended.
    #[arg(long, value_name = "DAYS", env = "LOCKSMITH_HISTORY_DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..), hide_env_values = true)]
    pub history_days: u32,
    /// The history's largest size (e.g. 64MiB); past it the oldest records go first.
    #[arg(long, value_name = "SIZE", env = "LOCKSMITH_HISTORY_SIZE", default_value = "64MiB", value_parser = locksmith::restic::memory::parse_size, hide_env_values = true)]
    pub history_size: u64,
}

/// `--config`, the same for `serve` and `locks`.
#[derive(Debug, Args)]
pub struct FleetArg {
    /// A fleet file (TOML, `[[repository]]` tables, as deploy/locksmith.toml): every
    /// repository in it, instead of the repository options.
    #[arg(
        long,
        value_name = "FILE",
        env = "LOCKSMITH_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
}

/// The same binary started as `unlock` (the image's /bin/unlock).
#[derive(Debug, Parser)]
#[command(
    name = "unlock",
    version,
    about = "The audited restic unlock: inspect the locks, refuse what is unsafe, run `restic unlock`, leave the audit trail.",
    after_help = after_help(UNLOCK_NOTE, UNLOCK_EXAMPLES, For::Unlock)
)]
pub struct UnlockCli {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub args: UnlockArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Inspect only: never run restic unlock (the artefacts are still written).
    #[arg(long)]
    pub dry_run: bool,
    /// Run `restic unlock --remove-all`: every lock, not only stale ones.
    #[arg(long)]
    pub remove_all: bool,
    /// Run restic even when a removal would hit a live holder.
    #[arg(long)]
    pub force: bool,
    /// Where the removal is refused only until a live holder ends or a lock becomes
    /// restic's to remove, wait up to DURATION (30s, 10m, 2h) and unlock then.
    #[arg(long, value_name = "DURATION", value_parser = wait_parser)]
    pub wait: Option<std::time::Duration>,
    #[command(flatten)]
    pub audit: AuditArgs,
}

/// Where the audited unlock writes and looks: `unlock`'s, and a `run --recover`'s.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Where the log and JSON files go.
    #[arg(
        long,
        env = "UNLOCK_LOG_DIR",
        default_value = "/var/log",
        hide_env_values = true
    )]
    pub log_dir: PathBuf,
    /// Where pre-unlock.sh and post-unlock.sh are looked for.
    #[arg(
        long,
        env = "UNLOCK_HOOK_DIR",
        default_value = "/hooks",
        hide_env_values = true
    )]
    pub hook_dir: PathBuf,
    /// Where serve's history is: the locks removed are recorded there (only in a state
    /// directory given, or in a history that exists already).
    #[command(flatten)]
    pub state: StateArgs,
}

impl AuditArgs {
    /// The audited unlock's options for `asked`, from these and the environment.
    fn unlock(
        &self,
        raw: locksmith::config::RawRepoOptions,
        asked: locksmith::unlock::Asked,
    ) -> locksmith::unlock::UnlockOptions {
        let dirs = locksmith::unlock::Dirs {
            log: self.log_dir.clone(),
            hooks: self.hook_dir.clone(),
        };
        let get = |k: &str| std::env::var(k).ok();
        let mut o = locksmith::unlock::UnlockOptions::from_env(&get, raw, asked, dirs);
        o.state = self.state.place().filter(|p| p.chosen || p.exists());
        o
    }
}

impl UnlockArgs {
    pub fn to_options(&self, repo: &RepoArgs) -> locksmith::unlock::UnlockOptions {
        let mut raw = repo.to_options();
        raw.repository_file_wins = true;
        use locksmith::unlock::{Asked, Scope};
        let asked = Asked {
            scope: if self.remove_all {
                Scope::All
            } else {
                Scope::StaleOnly
            },
            dry_run: self.dry_run,
            force: self.force,
        };
        let mut o = self.audit.unlock(raw, asked);
        o.wait = self.wait;
        o
    }
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Exit 3 (after the usual output) when one of these holds, for cron and scripts.
    #[arg(long, value_name = "CONDITION", value_delimiter = ',', value_parser = fail_on_parser())]
    pub fail_on: Vec<Condition>,
    #[command(flatten)]
    pub fleet: FleetArg,
    /// Also write serve's /metrics for this run to PATH, atomically (node_exporter's
    /// textfile collector).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

impl LocksArgs {
    pub fn to_request(&self, color: ColorWhen) -> locksmith::oneshot::Request {
        locksmith::oneshot::Request {
            json: self.json,
            fail_on: self.fail_on.clone(),
            textfile: self.textfile.clone(),
            color: color.choice(),
        }
    }
}

impl ServeArgs {
    pub fn to_options(&self, repo: &RepoArgs) -> locksmith::serve::ServeOptions {
        use locksmith::serve::{ServeOptions, Source};
        let interval = std::time::Duration::from_secs(self.interval);
        let source = match &self.fleet.config {
            Some(path) => Source::File {
                path: path.clone(),
                env: backend_env(),
                defaults: repo.fleet_defaults(interval),
            },
            None => Source::One {
                options: Box::new(repo.to_options()),
                interval,
            },
        };
        ServeOptions {
            listen: self.listen,
            source,
            web_config: self.web.web_config.clone(),
            allowed_hosts: self.web.allowed_hosts.clone(),
            max_requests: Some(self.max_requests as usize),
            max_connections: self.max_connections.map(|n| n as usize),
            header_timeout: Some(std::time::Duration::from_secs(self.header_timeout)),
            agent: !self.no_agent,
            history: (!self.no_history).then(|| locksmith::serve::HistoryOptions {
                place: self.state.place(),
                keep: locksmith::history::Retention {
                    days: self.history_days,
                    size: self.history_size,
                },
            }),
        }
    }
}

/// `--fail-on`'s values: the report's conditions by their names, each with its help.
fn fail_on_parser() -> impl clap::builder::TypedValueParser<Value = Condition> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        Condition::ALL.map(|c| PossibleValue::new(c.name()).help(c.describe())),
    )
    .map(|name| Condition::named(&name).expect("one of the possible values"))
}

/// The repository options, named as restic names them.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository to read.
    #[arg(
        short = 'r',
        long = "repo",
        env = "RESTIC_REPOSITORY",
        global = true,
        hide_env_values = true
    )]
    pub repo: Option<String>,
    /// File holding the repository location.
    #[arg(
        long,
        env = "RESTIC_REPOSITORY_FILE",
        global = true,
        hide_env_values = true
    )]
    pub repository_file: Option<PathBuf>,
    /// File holding the repository password.
    #[arg(
        short = 'p',
        long,
        env = "RESTIC_PASSWORD_FILE",
        global = true,
        hide_env_values = true
    )]
    pub password_file: Option<PathBuf>,
    /// Command printing the repository password.
    #[arg(
        long,
        env = "RESTIC_PASSWORD_COMMAND",
        global = true,
        hide_env_values = true
    )]
    pub password_command: Option<String>,
    /// Key ID (prefix) to try first.
    #[arg(long, env = "RESTIC_KEY_HINT", global = true, hide_env_values = true)]
    pub key_hint: Option<String>,
    /// Backend option, as restic takes it (key=value; repeatable).
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Requests (lock files read) in flight at once [default: 32].
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: Option<u16>,
    /// Time limit of one request to a remote backend, in seconds [default: 30].
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Time limit of the whole reading (open, list, read every lock), in seconds; what is
    /// not read by then is reported as not read [default: 120].
    #[arg(long, global = true, env = "LOCKSMITH_DEADLINE", value_parser = clap::value_parser!(u64).range(1..), hide_env_values = true)]
    pub deadline: Option<u64>,
    /// Memory scrypt's lanes may hold at once (e.g. 64MiB): less is slower, never wrong.
    /// A cgroup's memory.max lowers it [default: 256MiB].
    #[arg(long, global = true, env = "LOCKSMITH_SCRYPT_MEMORY", value_name = "SIZE", value_parser = locksmith::restic::memory::parse_size, hide_env_values = true)]
    pub scrypt_memory: Option<u64>,
    /// A host that answers for its own locks (`locksmith agent` or serve there): HOST as
    /// restic writes it in the lock, URL of its agent (repeatable; comma-separated in the
    /// variable).
    #[arg(
        long = "peer",
        value_name = "HOST=URL",
        env = "LOCKSMITH_PEERS",
        value_delimiter = ',',
        global = true,
        hide_env_values = true
    )]
    pub peer: Vec<String>,
    /// A peers file: TOML `[[peer]]` tables (hostname, url, ca_file, cert_file, key_file,
    /// username, password_file).
    #[arg(
        long = "peers",
        value_name = "FILE",
        env = "LOCKSMITH_PEERS_FILE",
        global = true,
        hide_env_values = true
    )]
    pub peers_file: Option<PathBuf>,
    /// `--peer` and `--peers`, read and checked ([`RepoArgs::resolve_peers`]).
    #[arg(skip)]
    pub peers: std::sync::Arc<locksmith::peer::Peers>,
}

impl RepoArgs {
    /// As [`RepoArgs::to_options`]; without a password source, the password is asked for
    /// as restic asks: on the terminal (not echoed), or as the first line of a standard
    /// input that is not one.
    pub fn to_options_asking(&self) -> RawRepoOptions {
        let mut o = self.to_options();
        if o.lacks_password_source() {
            o.password = ask_password().map(Secret::new);
        }
        o
    }

    /// Reads the peers file and checks every peer, once, before anything runs.
    pub fn resolve_peers(&mut self) -> Result<(), locksmith::peer::PeerError> {
        let files: Vec<PathBuf> = self.peers_file.iter().cloned().collect();
        self.peers = std::sync::Arc::new(locksmith::peer::Peers::from_options(&self.peer, &files)?);
        Ok(())
    }

    /// Settings for the whole process rather than one repository (the lanes' memory).
    pub fn apply_to_process(&self) {
        if let Some(bytes) = self.scrypt_memory {
            locksmith::restic::memory::set_budget(bytes);
        }
    }

    pub fn to_options(&self) -> RawRepoOptions {
        RawRepoOptions {
            repo: self.repo.clone(),
            repository_file: self.repository_file.clone(),
            password_file: self.password_file.clone(),
            password_command: self.password_command.clone(),
            password: std::env::var("RESTIC_PASSWORD").ok().map(Secret::new),
            key_hint: self.key_hint.clone(),
            repository_file_wins: false,
            options: self.options.clone(),
            connections: self.connections.map(usize::from),
            timeout: self.timeout.map(std::time::Duration::from_secs),
            deadline: self.deadline.map(std::time::Duration::from_secs),
            env: backend_env(),
            regular_password_file: false,
            peers: self.peers.clone(),
        }
    }
}

impl RepoArgs {
    /// What a fleet file's repositories get where the file sets nothing.
    pub fn fleet_defaults(&self, interval: std::time::Duration) -> locksmith::fleet::Defaults {
        locksmith::fleet::Defaults {
            interval,
            deadline: self.deadline.map(std::time::Duration::from_secs),
            peers: self.peers.clone(),
        }
    }
}

/// The process's backend variables (`RESTIC_*`, `AWS_*` …), captured once.
pub fn backend_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| locksmith::backend::is_backend_var(k))
        .collect()
}

fn ask_password() -> Option<String> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        rpassword::prompt_password("enter password for repository: ").ok()?
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).ok()?;
        line
    };
    Some(line.trim_end_matches(['\r', '\n']).to_string())
}
