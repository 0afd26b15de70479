//! What a backend is opened with, and what each backend says about itself.
//!
//! Each backend's file declares the `-o` keys it acts on, the variables it reads and which
//! of them hold secrets ([`Declared`]); the lists here are gathered from those
//! declarations. Every backend's declaration is compiled in, with or without its Cargo
//! feature: a build without S3 still hands restic `AWS_SECRET_ACCESS_KEY` and must still
//! scrub it from restic's output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::Kind;
use super::net::NetOptions;
use crate::location::Location;

/// One backend's description of itself, kept beside its code.
#[derive(Debug)]
pub struct Declared {
    /// restic's scheme (`s3` of `s3:host/bucket`).
    pub scheme: &'static str,
    /// The `-o` keys it acts on, besides every backend's `<scheme>.connections`.
    pub options: &'static [&'static str],
    /// Prefixes of the environment variables it reads.
    pub env_prefixes: &'static [&'static str],
    /// Those of its variables whose values are secrets.
    pub secrets: &'static [&'static str],
}

/// Every backend's declaration, in [`Kind::ALL`]'s order.
fn declarations() -> impl Iterator<Item = &'static Declared> {
    Kind::ALL.into_iter().map(Kind::declared)
}

/// restic's own variables (`RESTIC_CACERT`, read by every backend that speaks HTTP).
const RESTIC_PREFIX: &str = "RESTIC_";

/// The prefixes of every variable a backend may read, `RESTIC_` first.
pub fn env_prefixes() -> Vec<&'static str> {
    let mut v = vec![RESTIC_PREFIX];
    for p in declarations().flat_map(|b| b.env_prefixes) {
        if !v.contains(p) && !p.starts_with(RESTIC_PREFIX) {
            v.push(p);
        }
    }
    v
}

/// Whether a backend may read this variable. Asked of every variable of the process, so
/// it walks the declarations instead of building [`env_prefixes`]' list each time.
pub fn is_backend_var(name: &str) -> bool {
    name.starts_with(RESTIC_PREFIX)
        || declarations()
            .flat_map(|b| b.env_prefixes)
            .any(|p| name.starts_with(p))
}

/// Every backend variable whose value is a secret.
pub fn secret_vars() -> impl Iterator<Item = &'static str> {
    declarations().flat_map(|b| b.secrets.iter().copied())
}

/// What one repository's backend is opened with. Built by the configuration layer; the
/// backends never see how it was given.
#[derive(Clone)]
pub struct Settings {
    pub location: Location,
    /// restic's `-o` options by key.
    pub options: BTreeMap<String, String>,
    /// The backend variables (`RESTIC_*`, `AWS_*` …), captured once. May hold secrets.
    pub env: BTreeMap<String, String>,
    pub net: NetOptions,
}

/// Shows the variables' names only: their values may be credentials.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("scheme", &self.location.scheme())
            .field("options", &self.options)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("net", &self.net)
            .finish()
    }
}

impl Settings {
    /// A variable of the captured environment, when set and not empty.
    pub fn var(&self, k: &str) -> Option<&str> {
        self.env
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `RESTIC_CACERT`'s certificate files.
    pub fn cacerts(&self) -> Vec<PathBuf> {
        self.var("RESTIC_CACERT")
            .map(cacert_paths)
            .unwrap_or_default()
    }

    /// `-o` keys this location's backend does not act on, for a warning: restic's others
    /// (`sftp.command`, `s3.storage-class` …) and other backends' are accepted so restic's
    /// command lines keep working.
    pub fn ignored_options(&self) -> Vec<&str> {
        let scheme = self.location.scheme();
        let known = self.location.kind.declared().options;
        let connections = format!("{scheme}.connections");
        self.options
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k) && *k != connections)
            .collect()
    }
}

/// `RESTIC_CACERT`: certificate files, comma-separated, as restic reads it.
pub fn cacert_paths(value: &str) -> Vec<PathBuf> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_is_declared_once() {
        let mut schemes: Vec<_> = declarations().map(|b| b.scheme).collect();
        schemes.sort_unstable();
        schemes.dedup();
        assert_eq!(schemes.len(), Kind::ALL.len());
        for s in schemes {
            let loc = Location::parse(&format!("{s}:x")).unwrap();
            assert_eq!(loc.scheme(), s);
        }
    }

    #[test]
    fn declarations_are_consistent() {
        for b in declarations() {
            for o in b.options {
                assert!(o.starts_with(&format!("{}.", b.scheme)), "{o}");
            }
            for s in b.secrets {
                assert!(
                    b.env_prefixes.iter().any(|p| s.starts_with(p)),
                    "{s} is read by {} under none of its prefixes",
                    b.scheme
                );
            }
        }
        let secrets: Vec<_> = secret_vars().collect();
        for s in [
            "AWS_SECRET_ACCESS_KEY",
            "RESTIC_REST_PASSWORD",
            "OS_PASSWORD",
            "ST_KEY",
        ] {
            assert!(secrets.contains(&s), "{s}");
        }
        assert!(is_backend_var("RESTIC_CACERT") && is_backend_var("B2_ACCOUNT_ID"));
        assert!(!is_backend_var("HOME"));
    }

    #[test]
    fn ignored_options_are_those_this_backend_does_not_use() {
        let s = Settings {
            location: Location::parse("s3:h/b").unwrap(),
            options: [
                ("s3.region", "x"),
                ("s3.storage-class", "y"),
                ("s3.connections", "4"),
                ("sftp.key", "k"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            env: [("AWS_SECRET_ACCESS_KEY".to_string(), "hunter22".to_string())].into(),
            net: NetOptions::default(),
        };
        assert_eq!(s.ignored_options(), ["s3.storage-class", "sftp.key"]);
        assert!(!format!("{s:?}").contains("hunter22"));
    }
}
