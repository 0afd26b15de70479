//! Where the history is: the directory asked for, else systemd's, else the user's XDG
//! state directory.

use std::path::{Path, PathBuf};

/// The database's name in the state directory.
pub const FILE_NAME: &str = "history.sqlite";

/// A state directory, and whether someone chose it (`unlock` records only into a chosen
/// one, or into a history that already exists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub dir: PathBuf,
    pub chosen: bool,
}

impl Place {
    /// Whether a history was written here already.
    pub fn exists(&self) -> bool {
        self.dir.join(FILE_NAME).is_file()
    }
}

/// `given` (`--state-dir` or `LOCKSMITH_STATE_DIR`), else `STATE_DIRECTORY` (systemd's
/// `StateDirectory=`; the first of several), else `$XDG_STATE_HOME/locksmith`, else
/// `~/.local/state/locksmith`. `env` reads the environment (a parameter, for tests).
pub fn locate(given: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Option<Place> {
    let chosen = |dir: PathBuf| Place { dir, chosen: true };
    let fallback = |dir: PathBuf| Place { dir, chosen: false };
    if let Some(dir) = given.filter(|d| !d.as_os_str().is_empty()) {
        return Some(chosen(dir.to_path_buf()));
    }
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dirs) = set("STATE_DIRECTORY") {
        let first = dirs.split(':').next().unwrap_or_default();
        return Some(chosen(PathBuf::from(first)));
    }
    // XDG: a relative value is invalid and ignored.
    if let Some(xdg) = set("XDG_STATE_HOME").filter(|x| x.starts_with('/')) {
        return Some(fallback(Path::new(&xdg).join("locksmith")));
    }
    set("HOME")
        .filter(|h| h.starts_with('/'))
        .map(|home| fallback(Path::new(&home).join(".local/state/locksmith")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_is_chosen_then_systemds_then_xdgs() {
        type Case = (
            Option<&'static str>,
            &'static [(&'static str, &'static str)],
        );
        let cases: [(Case, Option<(&str, bool)>); 7] = [
            (
                (Some("/s"), &[("STATE_DIRECTORY", "/sd")]),
                Some(("/s", true)),
            ),
            (
                (None, &[("STATE_DIRECTORY", "/a:/b"), ("HOME", "/h")]),
                Some(("/a", true)),
            ),
            (
                (None, &[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]),
                Some(("/x/locksmith", false)),
            ),
            (
                (None, &[("XDG_STATE_HOME", "rel"), ("HOME", "/h")]),
                Some(("/h/.local/state/locksmith", false)),
            ),
            (
                (Some(""), &[("HOME", "/h")]),
                Some(("/h/.local/state/locksmith", false)),
            ),
            ((None, &[("HOME", "")]), None),
            ((None, &[]), None),
        ];
        for ((given, vars), want) in cases {
            let env = |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            let got = locate(given.map(Path::new), &env);
            let got = got.as_ref().map(|p| (p.dir.to_str().unwrap(), p.chosen));
            assert_eq!(got, want, "{given:?} {vars:?}");
        }
    }
}
