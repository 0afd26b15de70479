//! The operator-facing outputs as snapshots (insta), so that a change in wording or layout
//! shows in review. Times, ages, IDs, paths and this host's name are filtered out; runs of
//! spaces are folded, since column widths follow what was filtered.

use locksmith::seal::Encoding;

use crate::common::*;

fn staged_repo() -> TestRepo {
    let t = TestRepo::new(2);
    stage(&t);
    t
}

/// Locks of other hosts (fixed names and PIDs), one unreadable entry and one ignored.
pub fn stage(t: &TestRepo) {
    let mut young = lock_at(minutes_ago(3), "web-1", 4242);
    young.exclusive = true;
    t.seal(&young, Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(50), "db-2", 77), Encoding::Json);
    t.seal(&lock_at(minutes_ago(15), "nas", 9), Encoding::Zstd);
    let junk = vec![0x42u8; 150];
    t.write_lock_file(&locksmith::seal::id_of(&junk), &junk);
    t.write_lock_file(&format!("{}-tmp-1", "ab".repeat(32)), b"partial");
}

/// Filters for `t`'s outputs; `table`: fold runs of spaces (column widths follow what was
/// filtered).
pub fn settings(t: &TestRepo, table: bool) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    let path = regex::escape(&t.path.display().to_string());
    for (pattern, replacement) in [
        (path.as_str(), "[repo]"),
        (r"[0-9a-f]{64}", "[id]"),
        (r"(?m)^  [0-9a-f]{8}  ", "  [id]  "),
        (r"(?m)^[0-9a-f]{8}  ", "[id]  "),
        (r"\b[0-9a-f]{8}\b", "[short id]"),
        (
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)",
            "[time]",
        ),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[time]"),
        (r"-?\d+(d\d\dh|h\d\dm|m\d\ds|s)\b", "[age]"),
        (r#"("(storage_)?age_seconds": ?)-?\d+"#, "${1}[n]"),
        (r"checked on \S+", "checked on [host]"),
        (r#""checked_on": "[^"]*""#, r#""checked_on": "[host]""#),
        (r#"("(started|finished)_epoch": )\d+"#, "${1}[n]"),
        (r#""duration_seconds": \d+"#, r#""duration_seconds": [n]"#),
        (
            r#""restic_version": "[^"]*""#,
            r#""restic_version": "[version]""#,
        ),
    ] {
        s.add_filter(pattern, replacement);
    }
    if table {
        s.add_filter(r" {2,}", "  ");
    }
    s
}

#[test]
fn table_snapshot() {
    crate::needs!("restic");
    let t = staged_repo();
    let out = t.locksmith().arg("locks").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    settings(&t, true)
        .bind(|| insta::assert_snapshot!("table", String::from_utf8(out.stdout).unwrap()));
}

#[test]
fn json_snapshot() {
    crate::needs!("restic");
    let t = staged_repo();
    let out = t.locksmith().args(["locks", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    settings(&t, false)
        .bind(|| insta::assert_snapshot!("json", String::from_utf8(out.stdout).unwrap()));
}
