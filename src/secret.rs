//! Secrets and the scrubbing that keeps them out of every line locksmith writes.

use std::fmt;

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// locksmith's own variables whose values are secrets (the backends declare theirs).
pub const OWN_SECRET_VARS: &[&str] = &["RESTIC_PASSWORD", "WEBHOOK_HEADER_AUTH", "SMTP_PASSWORD"];

/// Replaces every known secret in text that came from elsewhere (restic's output, a
/// server's error body) before it is shown or stored. Belt and braces: locksmith's own
/// messages never format a secret in the first place.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than this are not scrubbed: replacing every "a" would garble output
    /// without protecting anything.
    const MIN_LEN: usize = 3;

    pub fn add(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() >= Self::MIN_LEN && !self.secrets.iter().any(|k| k == s) {
            self.secrets.push(s.to_string());
            // Longest first, so a secret containing another is replaced whole.
            self.secrets.sort_by_key(|k| std::cmp::Reverse(k.len()));
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter22");
        assert!(!format!("{s:?} {s}").contains("hunter22"));
    }

    #[test]
    fn redactor_replaces_longest_first() {
        let mut r = Redactor::default();
        r.add("abc");
        r.add("abcdef");
        r.add("x");
        assert_eq!(r.scrub("key abcdef and abc and x"), "key *** and *** and x");
    }
}
