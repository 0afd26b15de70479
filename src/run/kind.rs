//! Which lock a restic command line takes, for restic 0.14 to 0.19: read from restic's
//! `cmd/restic/cmd_*.go` at v0.14.0, v0.15.2, v0.16.5, v0.17.3, v0.18.1 and v0.19.1
//! (`lockRepo` / `lockRepoExclusive` up to 0.16, `openWithReadLock` / `openWithAppendLock`
//! / `openWithExclusiveLock` from 0.17; read and append locks are both non-exclusive).
//! The table is also in `../shared/spec` terms in the README ("Jobs that meet a lock").
//! Pure.

/// The lock a command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No lock: it runs whatever the locks.
    Nothing,
    /// A non-exclusive lock: only exclusive locks are in its way.
    Shared,
    /// An exclusive lock: every lock is in its way.
    Exclusive,
}

/// restic's global flags that take a value in the next argument (0.14 to 0.19).
const VALUED: &[&str] = &[
    "-r",
    "--repo",
    "--repository-file",
    "-p",
    "--password-file",
    "--password-command",
    "--key-hint",
    "--cacert",
    "--cache-dir",
    "--tls-client-cert",
    "--limit-upload",
    "--limit-download",
    "-o",
    "--option",
    "--pack-size",
    "--compression",
    "--retry-lock",
    "--stuck-request-timeout",
    "--http-user-agent",
];

/// A restic command line, as far as its lock is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The command word's index in the arguments.
    pub at: Option<usize>,
    pub command: Option<String>,
    /// The first word after the command (`key list`, `repair index`, `list locks`).
    pub sub: Option<String>,
    pub no_lock: bool,
    pub dry_run: bool,
    /// `rewrite --forget`.
    pub forget: bool,
    pub retry_lock: bool,
}

impl Line {
    pub fn parse(args: &[String]) -> Line {
        let mut l = Line::default();
        let mut skip = false;
        for (i, a) in args.iter().enumerate() {
            if std::mem::take(&mut skip) {
                continue;
            }
            let flag = a.split('=').next().unwrap_or(a);
            match flag {
                "--" => break,
                "--no-lock" => l.no_lock = true,
                "--dry-run" | "-n" => l.dry_run = true,
                "--forget" => l.forget = true,
                "--retry-lock" => l.retry_lock = true,
                _ => {}
            }
            if a.starts_with('-') {
                skip = VALUED.contains(&a.as_str());
            } else if l.command.is_none() {
                (l.at, l.command) = (Some(i), Some(a.clone()));
            } else if l.sub.is_none() {
                l.sub = Some(a.clone());
            }
        }
        l
    }

    /// The lock this line takes under restic `version` (major, minor).
    pub fn need(&self, version: (u32, u32)) -> Need {
        use Need::*;
        let since = |minor: u32| version >= (0, minor);
        let unless_no_lock = |n: Need| if self.no_lock { Nothing } else { n };
        let Some(cmd) = self.command.as_deref() else {
            return Nothing;
        };
        let sub = self.sub.as_deref().unwrap_or("");
        match cmd {
            "init" | "unlock" | "version" | "help" | "generate" | "cache" | "self-update"
            | "options" | "features" | "completion" => Nothing,
            "backup" if self.dry_run && since(16) => Nothing,
            "backup" | "copy" => Shared,
            "check" => unless_no_lock(Exclusive),
            "prune" if self.dry_run && self.no_lock && since(17) => Nothing,
            "forget" if self.dry_run && self.no_lock => Nothing,
            "prune" | "forget" | "migrate" | "rebuild-index" => Exclusive,
            "rewrite" if self.dry_run => Nothing,
            "rewrite" if self.forget => Exclusive,
            "rewrite" => Shared,
            "repair" if sub == "snapshots" && self.dry_run && since(16) => Nothing,
            "repair" => Exclusive,
            "tag" if self.no_lock && !since(17) => Nothing,
            "tag" => Exclusive,
            "key" if sub == "list" => unless_no_lock(Shared),
            "key" if sub == "add" => Shared,
            "key" => Exclusive,
            "recover" if since(18) => Exclusive,
            "recover" => Shared,
            "ls" if !since(17) => Nothing,
            "list" if sub == "locks" => Nothing,
            "ls" | "list" | "cat" | "diff" | "dump" | "find" | "mount" | "restore"
            | "snapshots" | "stats" | "debug" => unless_no_lock(Shared),
            // A command this table does not know: every lock is in its way.
            _ => Exclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Need::*;

    fn need(line: &str, v: (u32, u32)) -> Need {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        Line::parse(&args).need(v)
    }

    #[test]
    fn each_command_takes_the_lock_restics_code_takes() {
        let cases: &[(&str, (u32, u32), Need)] = &[
            ("backup /data", (0, 14), Shared),
            ("-r /r backup --dry-run /data", (0, 14), Shared),
            ("-r /r backup --dry-run /data", (0, 16), Nothing),
            ("backup -n /data", (0, 19), Nothing),
            ("--repo /r --password-file pw prune", (0, 14), Exclusive),
            ("prune --dry-run", (0, 16), Exclusive),
            ("prune --dry-run --no-lock", (0, 16), Exclusive),
            ("prune --dry-run --no-lock", (0, 17), Nothing),
            ("forget --keep-last 3 --prune", (0, 14), Exclusive),
            ("forget --dry-run --no-lock --keep-last 3", (0, 14), Nothing),
            ("forget --dry-run --keep-last 3", (0, 19), Exclusive),
            ("check", (0, 18), Exclusive),
            ("--no-lock check", (0, 18), Nothing),
            ("snapshots", (0, 14), Shared),
            ("snapshots --no-lock", (0, 19), Nothing),
            ("ls latest", (0, 16), Nothing),
            ("ls latest", (0, 17), Shared),
            ("list locks", (0, 19), Nothing),
            ("list snapshots", (0, 19), Shared),
            ("recover", (0, 17), Shared),
            ("recover", (0, 18), Exclusive),
            ("rewrite latest", (0, 17), Shared),
            ("rewrite --forget latest", (0, 17), Exclusive),
            ("rewrite --dry-run --forget latest", (0, 17), Nothing),
            ("repair snapshots --dry-run", (0, 16), Nothing),
            ("repair index", (0, 16), Exclusive),
            ("rebuild-index", (0, 14), Exclusive),
            ("tag --add x", (0, 14), Exclusive),
            ("--no-lock tag --add x", (0, 14), Nothing),
            ("--no-lock tag --add x", (0, 17), Exclusive),
            ("key list", (0, 14), Shared),
            ("key add", (0, 19), Shared),
            ("key passwd", (0, 19), Exclusive),
            ("copy --from-repo /s", (0, 16), Shared),
            ("unlock --remove-all", (0, 19), Nothing),
            ("init", (0, 19), Nothing),
            ("version", (0, 19), Nothing),
            ("-o s3.region=x stats", (0, 19), Shared),
            ("frobnicate", (0, 19), Exclusive),
            ("", (0, 19), Nothing),
        ];
        for (line, v, want) in cases {
            assert_eq!(need(line, *v), *want, "restic {}.{} {line}", v.0, v.1);
        }
    }

    #[test]
    fn global_flags_with_values_are_not_the_command() {
        let args: Vec<String> = ["-r", "backup", "--retry-lock", "5m", "snapshots"]
            .map(String::from)
            .into();
        let l = Line::parse(&args);
        assert_eq!((l.command.as_deref(), l.at), (Some("snapshots"), Some(4)));
        assert!(l.retry_lock);
    }
}
