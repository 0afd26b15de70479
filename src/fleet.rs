//! The fleet file (`--config`, TOML): the repositories `serve` watches and `locks` reports
//! at once. Every mistake is found before anything runs, and named by file and line.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::backend;
use crate::config::RawRepoOptions;

/// The default time between two refreshes of a repository.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// What applies where the file sets nothing: the command line's `--interval` and
/// `--deadline`.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub interval: Duration,
    pub deadline: Option<Duration>,
    /// The command line's peers; the file's `[[peer]]` tables add to them (and win).
    pub peers: std::sync::Arc<crate::peer::Peers>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            interval: DEFAULT_INTERVAL,
            deadline: None,
            peers: Default::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    interval: Option<Spanned<u64>>,
    #[serde(default)]
    repository: Vec<Spanned<Entry>>,
    #[serde(default)]
    peer: Vec<Spanned<crate::peer::PeerEntry>>,
}

/// `-o` options, as restic's `key=value` list or as a table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Options {
    List(Vec<String>),
    Table(BTreeMap<String, String>),
}

/// One `[[repository]]` table, as written. Two equal entries describe the same watch, so a
/// reload keeps its state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub repository: Option<String>,
    pub repository_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub key_hint: Option<String>,
    pub options: Option<Options>,
    pub connections: Option<usize>,
    pub timeout: Option<u64>,
    /// Seconds one reading may take in all (`--deadline`).
    pub deadline: Option<u64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub interval: Option<u64>,
}

/// A repository of the fleet, ready for the engine.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub entry: Entry,
    pub options: RawRepoOptions,
    /// The options resolved, where the caller already did (serve's single repository).
    pub resolved: Option<crate::config::RepoConfig>,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {why}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FleetError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub why: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads and checks a fleet file. `env` is the process's backend environment, which each
/// repository's own `env` table overrides; `defaults` apply where the file sets nothing.
pub fn load(
    path: &Path,
    env: &BTreeMap<String, String>,
    defaults: Defaults,
) -> Result<Vec<Member>, FleetError> {
    let err = |line, why: String| FleetError {
        file: path.to_path_buf(),
        line,
        why,
    };
    let text = crate::files::read_config(path).map_err(|e| err(None, e.to_string()))?;
    parse(&text, path, env, defaults).map_err(|(line, why)| err(line, why))
}

fn parse(
    text: &str,
    path: &Path,
    env: &BTreeMap<String, String>,
    defaults: Defaults,
) -> Result<Vec<Member>, (Option<usize>, String)> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        (line, e.message().trim().to_string())
    })?;
    let default = match &file.interval {
        Some(i) if *i.get_ref() == 0 => {
            return Err((
                Some(line_of(text, i.span().start)),
                "interval must be at least 1 second".into(),
            ));
        }
        Some(i) => Duration::from_secs(*i.get_ref()),
        None => defaults.interval,
    };
    if file.repository.is_empty() {
        return Err((None, "no [[repository]] table: nothing to watch".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut peers = (*defaults.peers).clone();
    for spanned in &file.peer {
        let line = Some(line_of(text, spanned.span().start));
        peers.add(
            spanned
                .get_ref()
                .resolve(base)
                .map_err(|e| (line, e.to_string()))?,
        );
    }
    let defaults = Defaults {
        interval: default,
        peers: std::sync::Arc::new(peers),
        ..defaults
    };
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for spanned in file.repository {
        let line = Some(line_of(text, spanned.span().start));
        let entry = spanned.into_inner();
        let member = member(entry, base, env, &defaults)
            .map_err(|why| (line, why))
            .and_then(|m| {
                if names.insert(m.name.clone()) {
                    Ok(m)
                } else {
                    Err((line, format!("repository name {:?} is used twice", m.name)))
                }
            })?;
        out.push(member);
    }
    Ok(out)
}

/// Relative paths in the file are relative to the file, not to wherever serve was started.
fn beside(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// What a table must and must not say, before anything is built from it.
fn check(entry: &Entry) -> Result<(), String> {
    let n = &entry.name;
    if n.trim().is_empty() {
        return Err("a repository needs a non-empty name".into());
    }
    let one_of = |a: bool, b: bool, both: &str, neither: &str| match (a, b) {
        (true, true) => Err(format!("{n:?}: {both}")),
        (false, false) => Err(format!("{n:?}: {neither}")),
        _ => Ok(()),
    };
    one_of(
        entry.repository.is_some(),
        entry.repository_file.is_some(),
        "repository and repository_file are both given: keep one",
        "needs repository (a location) or repository_file",
    )?;
    one_of(
        entry.password_file.is_some(),
        entry.password_command.is_some(),
        "password_file and password_command are both given: keep one",
        "needs password_file or password_command (a password is never written in this file)",
    )?;
    for (what, v) in [
        ("interval", entry.interval),
        ("timeout", entry.timeout),
        ("deadline", entry.deadline),
        ("connections", entry.connections.map(|c| c as u64)),
    ] {
        if v == Some(0) {
            return Err(format!("{n:?}: {what} must be at least 1"));
        }
    }
    check_env(entry)
}

fn check_env(entry: &Entry) -> Result<(), String> {
    let n = &entry.name;
    for k in entry.env.keys() {
        if k == "RESTIC_PASSWORD" || k == "RESTIC_REPOSITORY" {
            return Err(format!(
                "{n:?}: env.{k} is not taken here: use password_file/password_command and repository"
            ));
        }
        if !backend::is_backend_var(k) {
            return Err(format!(
                "{n:?}: env.{k} is not a backend variable (expected one starting with {})",
                backend::env_prefixes().join(", ")
            ));
        }
    }
    Ok(())
}

/// The `-o` options as `key=value` strings.
fn options_of(entry: &Entry) -> Result<Vec<String>, String> {
    let options = match &entry.options {
        None => Vec::new(),
        Some(Options::List(l)) => l.clone(),
        Some(Options::Table(t)) => t.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    };
    match options.iter().find(|o| !o.contains('=')) {
        Some(bad) => Err(format!("{:?}: option {bad:?} is not key=value", entry.name)),
        None => Ok(options),
    }
}

fn member(
    entry: Entry,
    base: &Path,
    env: &BTreeMap<String, String>,
    defaults: &Defaults,
) -> Result<Member, String> {
    check(&entry)?;
    let options = options_of(&entry)?;
    let mut vars = env.clone();
    vars.extend(entry.env.clone());
    let options = RawRepoOptions {
        repo: entry.repository.clone(),
        repository_file: entry.repository_file.as_deref().map(|p| beside(base, p)),
        password_file: entry.password_file.as_deref().map(|p| beside(base, p)),
        password_command: entry.password_command.clone(),
        password: None,
        key_hint: entry.key_hint.clone(),
        repository_file_wins: false,
        options,
        connections: entry.connections,
        timeout: entry.timeout.map(Duration::from_secs),
        deadline: entry
            .deadline
            .map(Duration::from_secs)
            .or(defaults.deadline),
        env: vars,
        regular_password_file: true,
        peers: defaults.peers.clone(),
    };
    Ok(Member {
        name: entry.name.clone(),
        interval: entry
            .interval
            .map_or(defaults.interval, Duration::from_secs),
        entry,
        options,
        resolved: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(t: &str) -> Result<Vec<Member>, (Option<usize>, String)> {
        parse(
            t,
            Path::new("/etc/locksmith/fleet.toml"),
            &BTreeMap::new(),
            Defaults::default(),
        )
    }

    #[test]
    fn a_fleet_with_defaults_and_relative_paths() {
        let m = parse_str(
            r#"
interval = 30
[[repository]]
name = "nas"
repository = "/srv/restic"
password_file = "nas.pw"
options = ["sftp.key=k"]
[[repository]]
name = "s3"
repository = "s3:http://127.0.0.1:9000/b"
password_command = "pass show s3"
interval = 300
options = { "s3.region" = "eu-west-1" }
env = { AWS_ACCESS_KEY_ID = "id" }
"#,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].interval, Duration::from_secs(30));
        assert_eq!(
            m[0].options.password_file.as_deref(),
            Some(Path::new("/etc/locksmith/nas.pw"))
        );
        assert_eq!(m[1].interval, Duration::from_secs(300));
        assert_eq!(m[1].options.options, ["s3.region=eu-west-1"]);
        assert_eq!(m[1].options.env["AWS_ACCESS_KEY_ID"], "id");
    }

    #[test]
    fn the_callers_defaults_apply_where_the_file_sets_none() {
        let t = "[[repository]]\nname = \"a\"\nrepository = \"/r\"\npassword_file = \"p\"\n";
        let m = parse(
            t,
            Path::new("f.toml"),
            &BTreeMap::new(),
            Defaults {
                interval: Duration::from_secs(7),
                deadline: Some(Duration::from_secs(30)),
                peers: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(m[0].interval, Duration::from_secs(7));
        assert_eq!(m[0].options.deadline, Some(Duration::from_secs(30)));
        let t = format!("interval = 9\n{t}");
        let m = parse(
            &t,
            Path::new("f.toml"),
            &BTreeMap::new(),
            Defaults {
                interval: Duration::from_secs(7),
                deadline: Some(Duration::from_secs(30)),
                peers: Default::default(),
            },
        )
        .unwrap();
        assert_eq!(m[0].interval, Duration::from_secs(9));
        let t = format!("{t}deadline = 5\n");
        let m = parse(
            &t,
            Path::new("f.toml"),
            &BTreeMap::new(),
            Defaults::default(),
        )
        .unwrap();
        assert_eq!(
            m[0].options.deadline,
            Some(Duration::from_secs(5)),
            "the file's own"
        );
    }

    #[test]
    fn a_fleets_peers_add_to_the_command_lines_and_name_their_line() {
        let t = "[[repository]]\nname = \"a\"\nrepository = \"/r\"\npassword_file = \"p\"\n\n[[peer]]\nhostname = \"b\"\nurl = \"http://b:9857\"\n";
        let cli = crate::peer::Peers::from_options(&["c=http://c:1".into()], &[]).unwrap();
        let defaults = Defaults {
            peers: std::sync::Arc::new(cli),
            ..Defaults::default()
        };
        let m = parse(t, Path::new("f.toml"), &BTreeMap::new(), defaults.clone()).unwrap();
        let peers = &m[0].options.peers;
        assert!(peers.get("b").is_some() && peers.get("c").is_some());
        let bad = t.replace("http://b:9857", "b:9857");
        let (line, why) = parse(&bad, Path::new("f.toml"), &BTreeMap::new(), defaults).unwrap_err();
        assert_eq!(line, Some(6), "{why}");
    }

    #[test]
    fn the_shipped_example_parses() {
        let m = parse_str(include_str!("../deploy/locksmith.toml")).unwrap();
        assert_eq!(m[0].name, "nas");
        assert_eq!(m[0].interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn mistakes_name_their_line() {
        let cases = [
            (
                "[[repository]]\nname = \"a\"\nrepository = \"/r\"\n",
                1,
                "password",
            ),
            (
                "[[repository]]\nname = \"a\"\nrepository = \"/r\"\npassword_file = \"p\"\n\n[[repository]]\nname = \"a\"\nrepository = \"/s\"\npassword_file = \"p\"\n",
                6,
                "used twice",
            ),
            (
                "[[repository]]\nname = \"a\"\nrepositry = \"/r\"\n",
                3,
                "repositry",
            ),
            ("interval = \"x\"\n", 1, "invalid type"),
            (
                "[[repository]]\nname = \"a\"\nrepository = \"/r\"\npassword_file = \"p\"\nenv = { HOME = \"/\" }\n",
                1,
                "not a backend variable",
            ),
            (
                "[[repository]]\nname = \"a\"\nrepository = \"/r\"\npassword_file = \"p\"\nenv = { RESTIC_PASSWORD = \"x\" }\n",
                1,
                "not taken",
            ),
        ];
        for (text, line, says) in cases {
            let (l, why) = parse_str(text).unwrap_err();
            assert_eq!(l, Some(line), "{why}");
            assert!(why.contains(says), "{why}");
        }
        assert!(parse_str("").unwrap_err().1.contains("nothing to watch"));
    }
}
