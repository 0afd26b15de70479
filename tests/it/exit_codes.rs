//! Each documented exit code, with one clear sentence on stderr and no secret anywhere.

use std::process::{Command, Output};

use locksmith::seal::Encoding;

use crate::common::*;

fn run(t: Option<&TestRepo>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = match t {
        Some(t) => t.locksmith(),
        None => locksmith_cmd(),
    };
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_no_secret(&out, PASSWORD);
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn exit_2_for_configuration_errors() {
    crate::needs!("restic");
    let pw = ("RESTIC_PASSWORD", PASSWORD);
    let out = run(None, &["locks"], &[pw]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("no repository given"),
        "{}",
        stderr(&out)
    );

    let out = run(None, &["locks", "-r", "/nonexistent"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no password given"));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    std::fs::write(&f, "/x\n").unwrap();
    let out = run(
        None,
        &[
            "locks",
            "-r",
            "/x",
            "--repository-file",
            f.to_str().unwrap(),
        ],
        &[pw],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("keep one"));

    let out = run(
        None,
        &[
            "locks",
            "-r",
            "/x",
            "-p",
            f.to_str().unwrap(),
            "--password-command",
            "echo x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("password file and a password command"));

    let out = run(
        None,
        &["locks", "-r", "/x", "--password-command", "false"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("password command"));

    let out = run(None, &["locks", "--no-such-flag"], &[pw]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn exit_10_when_there_is_no_repository() {
    crate::needs!("restic");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = run(
        None,
        &["locks", "-r", missing.to_str().unwrap()],
        &[("RESTIC_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let e = stderr(&out);
    assert!(
        e.contains("nothing-here") && e.contains("no config file"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one sentence: {e}");
}

#[test]
fn exit_12_for_a_wrong_password() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let out = run(
        Some(&t),
        &["locks"],
        &[("RESTIC_PASSWORD", "not-the-password")],
    );
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    assert!(stderr(&out).contains("wrong password"));
    assert!(!text(&out).contains("not-the-password"));
    // A password file and a password command work as well as the variable.
    let f = t.dir.path().join("pw");
    std::fs::write(&f, format!("{PASSWORD}\n")).unwrap();
    let mut c = t.locksmith();
    c.env_remove("RESTIC_PASSWORD")
        .env("RESTIC_PASSWORD_FILE", &f)
        .args(["locks", "--json"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let mut c = t.locksmith();
    c.env_remove("RESTIC_PASSWORD")
        .args(["locks", "--password-command"])
        .arg(format!("cat {}", f.display()));
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, PASSWORD);
}

#[test]
fn exit_1_when_the_backend_cannot_be_reached_with_the_url_masked() {
    crate::needs!("restic");
    for repo in [
        "rest:https://user:Url-Pass-77@127.0.0.1:1/repo",
        "s3:http://key:Url-Pass-77@127.0.0.1:1/bucket",
    ] {
        let out = run(
            None,
            &["locks", "-r", repo],
            &[("RESTIC_PASSWORD", PASSWORD)],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let e = stderr(&out);
        assert!(
            e.contains(&locksmith::location::Masked::new(repo).to_string()),
            "{e}"
        );
        assert!(e.contains(":***@127.0.0.1:1/"), "{e}");
        assert!(e.contains("cannot read the repository"), "{e}");
        assert_eq!(e.lines().count(), 1, "one sentence: {e}");
        assert!(!text(&out).contains("Url-Pass-77"));
    }
}

#[test]
fn repository_file_is_read_like_restic() {
    crate::needs!("restic");
    let t = TestRepo::new(1);
    let f = t.dir.path().join("repofile");
    std::fs::write(
        &f,
        format!("# the backup repository\n\n{}\n", t.path.display()),
    )
    .unwrap();
    let mut c = t.locksmith();
    c.env_remove("RESTIC_REPOSITORY")
        .env("RESTIC_REPOSITORY_FILE", &f)
        .args(["locks", "--json"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// `--help` shows the whole table of the one exit-code type, for each command, every code
/// with its meaning (the help only looked for "10" and "12" before).
#[test]
fn help_documents_the_exit_codes() {
    crate::needs!("restic");
    use locksmith::exit::{For, help_table};
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (args, cmd) in [
        (&["--help"][..], For::Locks),
        (&["locks", "--help"], For::Locks),
        (&["unlock", "--help"], For::Unlock),
    ] {
        let out = run(None, args, &[]);
        assert!(out.status.success());
        let s = words(&String::from_utf8(out.stdout).unwrap());
        let table = words(&help_table(cmd));
        assert!(s.contains(&table), "{args:?}: {s}\nlacks\n{table}");
        assert!(
            !s.contains("=]"),
            "no stray '=' after an unset variable: {s}"
        );
        let examples = s.split("Examples:").nth(1).unwrap_or_default();
        let program = match cmd {
            For::Locks => "locksmith ",
            For::Unlock => "unlock ",
        };
        assert!(
            examples.matches(program).count() >= 2,
            "{args:?}: two or three real examples: {s}"
        );
    }
}

#[test]
fn backend_options_are_checked_and_unused_ones_reported() {
    crate::needs!("restic");
    let t = TestRepo::new(1);
    let out = t
        .locksmith()
        .args(["-o", "no-equals-sign", "locks"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("-o no-equals-sign: not key=value"));
    let out = t
        .locksmith()
        .args([
            "-o",
            "sftp.command=ssh x",
            "-o",
            "local.connections=2",
            "-o",
            "s3.region=eu-west-1",
            "locks",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let e = stderr(&out);
    assert!(e.contains("ignoring -o sftp.command"), "{e}");
    // Another backend's option is restic's to ignore too.
    assert!(
        e.contains("ignoring -o s3.region: locksmith does not use it for a local repository"),
        "{e}"
    );
    assert!(!e.contains("local.connections"), "{e}");
    let out = t
        .locksmith()
        .args(["-o", "local.connections=zero", "locks"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `locks --fail-on`: exit 3 after the usual output when a named condition holds, 0 when
/// none does; each condition on sealed repositories.
#[test]
fn fail_on_each_condition() {
    crate::needs!("restic");
    const ALL: [&str; 6] = [
        "unsafe",
        "stale",
        "restic-removes",
        "unreadable",
        "exclusive",
        "any",
    ];
    let code = |t: &TestRepo, conditions: &str| {
        let out = t
            .locksmith()
            .args(["locks", "--json", "--fail-on", conditions])
            .output()
            .unwrap();
        let _: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("the usual output first: {e}: {}", text(&out)));
        out.status.code().unwrap()
    };
    // Repositories in which different sets of conditions hold: for every two conditions,
    // one repository where one holds and the other does not, so no condition can answer
    // for another.
    let staged = TestRepo::new(2);
    crate::snapshots::stage(&staged);
    let empty = TestRepo::new(2);
    let exclusive = TestRepo::new(2);
    let mut lock = lock_at(minutes_ago(1), "otherhost", 5);
    lock.exclusive = true;
    exclusive.seal(&lock, Encoding::Zstd);
    let junk = TestRepo::new(2);
    let bytes = vec![0x42u8; 150];
    junk.write_lock_file(&locksmith::seal::id_of(&bytes), &bytes);
    // A lock older than the live process now holding its PID on this host: the holder is
    // gone (stale), restic's probe finds a live PID (keeps it) and SIGHUPs it (unsafe).
    let reused = TestRepo::new(2);
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    reused.seal(
        &lock_at(minutes_ago(1), &this_host(), bystander.id() as i64),
        Encoding::Zstd,
    );
    #[rustfmt::skip]
    let rows: [(&str, &TestRepo, &[&str]); 5] = [
        ("empty", &empty, &[]),
        ("staged", &staged, &["stale", "restic-removes", "unreadable", "exclusive", "any"]),
        ("exclusive", &exclusive, &["exclusive", "any"]),
        ("unreadable", &junk, &["unreadable", "any"]),
        ("reused PID", &reused, &["unsafe", "stale", "any"]),
    ];
    for (what, t, holding) in rows {
        for c in ALL {
            let want = if holding.contains(&c) { 3 } else { 0 };
            assert_eq!(code(t, c), want, "{what}: --fail-on {c}");
        }
    }
    assert_eq!(
        code(&staged, "unsafe,exclusive"),
        3,
        "a list: any one holding"
    );
    assert_eq!(code(&empty, &ALL.join(",")), 0);
    let _ = bystander.kill();
    let _ = bystander.wait();

    let bad = staged
        .locksmith()
        .args(["locks", "--fail-on", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown condition: {}",
        text(&bad)
    );
}

/// `--generate`: the man page and each shell's completions, made from the clap definition,
/// each loaded by its own program.
#[test]
fn generated_man_page_and_completions_load() {
    crate::needs!("bash", "zsh", "fish", "man");
    let dir = tempfile::tempdir().unwrap();
    let generate = |kind: &str| {
        let out = locksmith_cmd().args(["--generate", kind]).output().unwrap();
        assert!(out.status.success(), "{kind}: {}", text(&out));
        assert!(
            out.stdout.len() > 1000,
            "{kind}: {} bytes",
            out.stdout.len()
        );
        let path = dir.path().join(kind);
        std::fs::write(&path, &out.stdout).unwrap();
        path
    };
    let sh = |program: &str, script: String| {
        let out = Command::new(program)
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = generate("complete-bash");
    assert!(
        sh(
            "bash",
            format!("source {}; complete -p locksmith", bash.display())
        )
        .contains("_locksmith")
    );
    let zsh = generate("complete-zsh");
    let got = sh(
        "zsh",
        format!(
            "autoload -U compinit; compinit -u; source {}; print ${{_comps[locksmith]}}",
            zsh.display()
        ),
    );
    assert!(got.contains("_locksmith"), "{got}");
    let fish = generate("complete-fish");
    let got = sh(
        "fish",
        format!("source {}; complete -C 'locksmith --gen'", fish.display()),
    );
    assert!(got.contains("--generate"), "{got}");
    // No PowerShell in Debian to load it: the script must at least be PowerShell's, for
    // this command, and know its subcommands and flags.
    let ps = std::fs::read_to_string(generate("complete-powershell")).unwrap();
    for words in [
        "Register-ArgumentCompleter -Native -CommandName 'locksmith'",
        "'locksmith;locks'",
        "'locksmith;unlock'",
        "'locksmith;serve'",
        "'--fail-on'",
        "'--remove-all'",
    ] {
        assert!(ps.contains(words), "{words} in\n{ps}");
    }
    let man = generate("man");
    let page = Command::new("man")
        .arg("-l")
        .arg(&man)
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout);
    for words in [
        "EXIT STATUS",
        "12",
        "wrong password",
        "ENVIRONMENT",
        "RESTIC_REPOSITORY",
        "LOCKSMITH_DEADLINE",
    ] {
        assert!(page.contains(words), "man page lacks {words:?}:\n{page}");
    }
}

/// Colour as ripgrep and fd do it: on a terminal unless NO_COLOR; never through a pipe
/// unless asked (`--color always`, CLICOLOR_FORCE); `--color never` wins everywhere.
#[test]
fn colour_on_a_terminal_only() {
    crate::needs!("restic", "script");
    let t = TestRepo::new(2);
    t.seal(
        &lock_at(minutes_ago(50), "db-2", 77),
        locksmith::seal::Encoding::Zstd,
    );
    let bin = env!("CARGO_BIN_EXE_locksmith");
    let on_tty = |args: &str, env: &[(&str, &str)]| {
        let like = t.locksmith();
        let mut c = on_terminal(&format!("{bin} locks {args}"), &like);
        c.env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .envs(env.iter().copied());
        let out = c.stdin(std::process::Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let piped = |args: &[&str], env: &[(&str, &str)]| {
        let out = t
            .locksmith()
            .arg("locks")
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    const ESC: char = '\u{1b}';
    let coloured = on_tty("", &[]);
    assert!(
        coloured.contains("\u{1b}[33m"),
        "the stale row in yellow: {coloured:?}"
    );
    assert!(!on_tty("", &[("NO_COLOR", "1")]).contains(ESC), "NO_COLOR");
    assert!(!on_tty("--color never", &[]).contains(ESC));
    assert!(!piped(&[], &[]).contains(ESC), "a pipe");
    assert!(piped(&["--color", "always"], &[]).contains(ESC));
    assert!(piped(&[], &[("CLICOLOR_FORCE", "1")]).contains(ESC));
    assert!(
        !piped(&["--json", "--color", "always"], &[]).contains(ESC),
        "JSON never"
    );
}
