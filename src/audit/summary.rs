//! `last-unlock.json`: a fixed key order and one key per line, because other tools read
//! it line by line with anchored regular expressions.

use serde_json::{Value, json};

use crate::report::JudgedLock;

/// A count that may not be known (the locks could not be read).
pub fn count_str(n: Option<usize>) -> String {
    n.map_or_else(|| "unknown".to_string(), |n| n.to_string())
}

pub fn on_off(b: bool) -> &'static str {
    if b { "ON" } else { "OFF" }
}

pub struct Summary {
    pub hostname: String,
    pub release: String,
    pub started_at: String,
    pub finished_at: String,
    pub started_epoch: i64,
    pub finished_epoch: i64,
    pub duration_seconds: u64,
    pub repository: String,
    pub remove_all: bool,
    pub dry_run: bool,
    pub locks_before: Option<usize>,
    pub locks_after: Option<usize>,
    pub exit_code: i32,
    // Keys beyond the contract's (consumers ignore unknown keys).
    pub force: bool,
    pub refused: bool,
    pub message: String,
    pub locks_stale: Option<usize>,
    pub locks_unsafe: Option<usize>,
    pub locks_unreadable: Option<usize>,
    pub restic_command: String,
    /// `restic version` of the restic run (or that would run), when it answered.
    pub restic_version: Option<String>,
    /// Who ran it on its own (`locksmith run --recover`), `None` for an operator.
    pub automatic: Option<String>,
    pub locks: Vec<JudgedLock>,
}

impl Summary {
    /// The document, with its trailing newline.
    pub fn render(&self) -> String {
        let fields: Vec<(&str, Value)> = vec![
            ("job", json!("unlock")),
            ("hostname", json!(self.hostname)),
            ("release", json!(self.release)),
            ("started_at", json!(self.started_at)),
            ("finished_at", json!(self.finished_at)),
            ("started_epoch", json!(self.started_epoch)),
            ("finished_epoch", json!(self.finished_epoch)),
            ("duration_seconds", json!(self.duration_seconds)),
            ("repository", json!(self.repository)),
            ("remove_all", json!(on_off(self.remove_all))),
            ("dry_run", json!(on_off(self.dry_run))),
            ("locks_before", json!(count_str(self.locks_before))),
            ("locks_after", json!(count_str(self.locks_after))),
            ("exit_code", json!(self.exit_code)),
            ("force", json!(on_off(self.force))),
            ("refused", json!(on_off(self.refused))),
            ("message", json!(self.message)),
            ("locks_stale", json!(count_str(self.locks_stale))),
            ("locks_unsafe", json!(count_str(self.locks_unsafe))),
            ("locks_unreadable", json!(count_str(self.locks_unreadable))),
            ("restic_command", json!(self.restic_command)),
            (
                "restic_version",
                json!(self.restic_version.as_deref().unwrap_or("unknown")),
            ),
            ("automatic", json!(on_off(self.automatic.is_some()))),
            (
                "automatic_by",
                json!(self.automatic.as_deref().unwrap_or("")),
            ),
        ];
        let mut out = String::from("{\n");
        for (k, v) in fields {
            out.push_str(&format!("  {}: {},\n", json!(k), v));
        }
        out.push_str("  \"locks\": [");
        for (i, l) in self.locks.iter().enumerate() {
            out.push_str(if i == 0 { "\n    " } else { ",\n    " });
            out.push_str(&serde_json::to_string(l).expect("a lock serialises"));
        }
        out.push_str(if self.locks.is_empty() {
            "]\n}\n"
        } else {
            "\n  ]\n}\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            hostname: "node".into(),
            release: "unknown".into(),
            started_at: "2026-05-13T13:25:00+0200".into(),
            finished_at: "2026-05-13T13:25:01+0200".into(),
            started_epoch: 1778671500,
            finished_epoch: 1778671501,
            duration_seconds: 1,
            repository: "s3:https://key:***@h/b".into(),
            remove_all: false,
            dry_run: true,
            locks_before: Some(2),
            locks_after: None,
            exit_code: 0,
            force: false,
            refused: false,
            message: "line \"one\"\nline two".into(),
            locks_stale: Some(1),
            locks_unsafe: Some(0),
            locks_unreadable: Some(0),
            restic_command: "restic unlock".into(),
            restic_version: Some("0.18.1".into()),
            automatic: None,
            locks: vec![],
        }
    }

    #[test]
    fn one_key_per_line_in_contract_order() {
        let s = sample().render();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["locks_before"], "2");
        assert_eq!(v["locks_after"], "unknown");
        assert_eq!(v["exit_code"], 0);
        let keys: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .map(|l| &l[..l.find('"').unwrap()])
            .collect();
        assert_eq!(
            &keys[..14],
            [
                "job",
                "hostname",
                "release",
                "started_at",
                "finished_at",
                "started_epoch",
                "finished_epoch",
                "duration_seconds",
                "repository",
                "remove_all",
                "dry_run",
                "locks_before",
                "locks_after",
                "exit_code"
            ]
        );
        assert!(s.ends_with("}\n") && !s.ends_with("}\n\n"));
        // A newline in a value stays escaped on its line.
        assert!(s.contains("  \"message\": \"line \\\"one\\\"\\nline two\",\n"));
    }
}
