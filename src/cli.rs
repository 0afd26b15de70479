//! Command-line syntax. Turned into the engine's plain configuration right away.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use locksmith::config::RawRepoOptions;
use locksmith::secret::Secret;

const EXIT_CODES: &str = "\
Exit codes:
  0   done
  1   any other error (the repository could not be read, a backend not supported yet)
  2   configuration error: no repository, no password source, conflicting sources
  10  the repository does not exist (no config file)
  12  wrong password or no key found";

#[derive(Debug, Parser)]
#[command(
    name = "locksmith",
    version,
    about = "Reads a restic repository's locks and tells which are stale, who holds them and whether removing them is safe.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and classify every lock (read-only; takes no lock).
    #[command(after_help = EXIT_CODES)]
    Locks(LocksArgs),
}

#[derive(Debug, Args)]
pub struct LocksArgs {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Lock files read at once.
    #[arg(long, default_value_t = locksmith::locks::DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub connections: u16,
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
    #[arg(long, env = "RESTIC_REPOSITORY_FILE", global = true)]
    pub repository_file: Option<PathBuf>,
    /// File holding the repository password.
    #[arg(short = 'p', long, env = "RESTIC_PASSWORD_FILE", global = true)]
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
    #[arg(long, env = "RESTIC_KEY_HINT", global = true)]
    pub key_hint: Option<String>,
}

impl RepoArgs {
    pub fn to_options(&self) -> RawRepoOptions {
        RawRepoOptions {
            repo: self.repo.clone(),
            repository_file: self.repository_file.clone(),
            password_file: self.password_file.clone(),
            password_command: self.password_command.clone(),
            password: std::env::var("RESTIC_PASSWORD").ok().map(Secret::new),
            key_hint: self.key_hint.clone(),
        }
    }
}
