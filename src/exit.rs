//! The one exit-code type. Both commands and `main` end through it, and `--help`'s tables
//! are generated from it, so the documented codes cannot drift from the real ones.
//! restic's own codes are used where they apply (10, 12).

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// Anything else: the repository could not be read, damaged files, a deadline passed.
    Other,
    /// The options or environment do not describe a usable repository and password.
    Config,
    /// No `config`: no repository there (restic ≥ 0.17 uses 10 too).
    NoRepository,
    /// No key opens with the password (restic ≥ 0.17.1 uses 12 too).
    WrongPassword,
    /// `locks --fail-on`: one of the named conditions holds (the report is printed).
    Condition,
    /// `unlock` refused: a removal, or restic's probe, would hit a live process.
    Refused,
    /// `run`: the wait ran out while a live (or unproven) holder was in the way.
    WaitedOut,
    /// restic was not found: the shell's "command not found", which restic never uses.
    NoRestic,
    /// `unlock` passes restic's own exit code through.
    Restic(i32),
}

/// Which command a help table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum For {
    Locks,
    Unlock,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Other => 1,
            Exit::Config => 2,
            Exit::Condition => 3,
            Exit::NoRepository => 10,
            Exit::WrongPassword => 12,
            Exit::Refused => 20,
            Exit::WaitedOut => 21,
            Exit::NoRestic => 127,
            Exit::Restic(c) => c,
        }
    }

    fn meaning(self, cmd: For) -> &'static str {
        match (self, cmd) {
            (Exit::Ok, For::Locks) => "done",
            (Exit::Ok, For::Unlock) => "success, or the dry run finished",
            (Exit::Other, For::Unlock) => {
                "a dry run whose reading was incomplete (entries not read before the deadline)"
            }
            (Exit::Other, _) => {
                "any other error: repository unreadable, deadline passed, backend unsupported"
            }
            (Exit::Config, _) => {
                "configuration error: no repository or password, conflicting sources"
            }
            (Exit::Condition, _) => "a --fail-on condition holds (after the usual output)",
            (Exit::NoRepository, _) => "the repository does not exist (no config file)",
            (Exit::WrongPassword, _) => "wrong password or no key found",
            (Exit::Refused, _) => {
                "refused: a removal or restic's SIGHUP probe would hit a live process, or locks were not seen (--force)"
            }
            (Exit::WaitedOut, _) => {
                "run: the wait ran out, a live or unproven holder still in the way"
            }
            (Exit::NoRestic, _) => "restic was not found (set RESTIC_BIN, or put restic on PATH)",
            (Exit::Restic(_), _) => {
                "any other: restic's own exit code, passed through and named in the log"
            }
        }
    }

    /// The codes a command can end with, in the order `--help` lists them.
    fn of(cmd: For) -> &'static [Exit] {
        match cmd {
            For::Locks => &[
                Exit::Ok,
                Exit::Other,
                Exit::Config,
                Exit::Condition,
                Exit::NoRepository,
                Exit::WrongPassword,
            ],
            For::Unlock => &[
                Exit::Ok,
                Exit::Other,
                Exit::Config,
                Exit::Refused,
                Exit::NoRestic,
                Exit::Restic(1),
            ],
        }
    }
}

/// How bad an ending is, for [`merge`]: an error over a condition over success.
fn rank(e: Exit) -> u8 {
    match e {
        Exit::Ok => 0,
        Exit::Condition => 1,
        _ => 2,
    }
}

/// The exit code of several runs (a fleet): the worst of them, an error over a condition
/// over success; among errors, the first one's code.
pub fn merge(codes: impl IntoIterator<Item = Exit>) -> Exit {
    codes.into_iter().fold(
        Exit::Ok,
        |worst, e| if rank(e) > rank(worst) { e } else { worst },
    )
}

/// The "Exit codes:" table of a command's `--help`.
pub fn help_table(cmd: For) -> String {
    let mut out = String::from("Exit codes:");
    for e in Exit::of(cmd) {
        let code = match e {
            Exit::Restic(_) => "*".to_string(),
            e => e.code().to_string(),
        };
        out.push_str(&format!("\n  {code:<3} {}", e.meaning(cmd)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_ends_with_its_worst_run() {
        use Exit::*;
        #[rustfmt::skip]
        let rows: &[(&[Exit], Exit)] = &[
            (&[], Ok),
            (&[Ok, Ok], Ok),
            (&[Ok, Condition, Ok], Condition),
            (&[Condition, Other], Other),
            (&[WrongPassword, Condition, NoRepository], WrongPassword),
            (&[Ok, NoRepository, Other], NoRepository),
            (&[Config, Condition], Config),
        ];
        for (codes, want) in rows {
            assert_eq!(merge(codes.iter().copied()), *want, "{codes:?}");
        }
    }

    #[test]
    fn every_code_is_listed_once_and_matches() {
        let t = help_table(For::Locks);
        for (code, words) in [
            ("0", "done"),
            ("1", "any other error"),
            ("2", "configuration error"),
            ("3", "a --fail-on condition holds"),
            ("10", "the repository does not exist"),
            ("12", "wrong password"),
        ] {
            assert!(t.contains(&format!("\n  {code:<3} {words}")), "{t}");
        }
        assert!(!t.contains("20 "));
        let u = help_table(For::Unlock);
        assert!(u.contains("\n  20  refused"), "{u}");
        assert!(u.contains("\n  *   any other: restic's own"), "{u}");
    }
}
