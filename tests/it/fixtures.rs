//! The shipped repositories, read by locksmith and by restic.

use crate::common::*;

fn matches_restic(name: &str) {
    for r in restics() {
        matches_restic_with(name, r);
    }
}

fn matches_restic_with(name: &str, r: &Restic) {
    let t = TestRepo::fixture(name).with(r);
    let report = t.locks_json();
    let ours = by_id(&report);
    let listed: Vec<String> = t
        .restic_ok(&["list", "locks", "--no-lock"])
        .lines()
        .map(str::to_string)
        .collect();
    let mut ids: Vec<_> = ours.keys().cloned().collect();
    let mut listed_sorted = listed.clone();
    ids.sort();
    listed_sorted.sort();
    assert_eq!(ids, listed_sorted, "same lock IDs as {r} list locks");
    assert_eq!(ours.len(), 2);
    for (id, lock) in &ours {
        assert_same_lock(lock, &t.cat_lock(id));
    }
    let exclusive: Vec<bool> = ours.values().map(|l| l["exclusive"] == true).collect();
    assert!(exclusive.contains(&true) && exclusive.contains(&false));
    let config: serde_json::Value =
        serde_json::from_str(&t.restic_ok(&["--no-lock", "cat", "config"])).unwrap();
    assert_eq!(report["repository_id"], config["id"]);
    assert_eq!(report["repository_version"], config["version"]);
    assert_eq!(report["counts"]["total"], 2);
    assert_eq!(report["counts"]["exclusive"], 1);
    assert_eq!(report["counts"]["non_exclusive"], 1);
}

#[test]
fn fixture_v1_locks_equal_restic_cat_lock() {
    crate::needs!("restic");
    matches_restic("repo-v1");
}

/// Made by restic 0.19 (format 2, compression on): read alike by locksmith and every restic.
#[test]
fn fixture_v2_made_by_restic_019_locks_equal_restic_cat_lock() {
    crate::needs!("restic");
    matches_restic("repo-v2-r19");
}

#[test]
fn fixture_v2_locks_equal_restic_cat_lock() {
    crate::needs!("restic");
    matches_restic("repo-v2");
}

/// The second password only opens a key restic calibrated: the real ~0.5 s path.
#[test]
fn calibrated_key_opens_fixture() {
    crate::needs!("restic");
    let mut t = TestRepo::fixture("repo-v2");
    t.password = std::fs::read_to_string(fixture_dir().join("second-password.txt"))
        .unwrap()
        .trim()
        .to_string();
    t.key_hint = None;
    let report = t.locks_json();
    assert_eq!(report["counts"]["total"], 2);
    let key_id = t.repo().key_id.clone();
    let kf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path.join("keys").join(&key_id)).unwrap()).unwrap();
    assert!(kf["N"].as_u64().unwrap() >= 16384, "a calibrated key: {kf}");
}

/// A hint naming the calibrated key is tried first, as restic does.
#[test]
fn key_hint_picks_the_named_key() {
    crate::needs!("restic");
    let mut t = TestRepo::fixture("repo-v1");
    let low = t.key_hint.clone().unwrap();
    // With the low-N key hinted (by a unique prefix), it is the one used.
    t.key_hint = Some(low[..6].to_string());
    assert_eq!(t.repo().key_id, low);
    // A hint naming a key this password does not open falls back to the others, and one
    // that opens is used (it used to be enough that something opened).
    let pw = |f: &str| {
        locksmith::secret::Secret::new(
            std::fs::read_to_string(fixture_dir().join(f))
                .unwrap()
                .trim(),
        )
    };
    let key_file = |id: &str| -> locksmith::repo::KeyFile {
        serde_json::from_slice(&std::fs::read(t.path.join("keys").join(id)).unwrap()).unwrap()
    };
    let second = std::fs::read_dir(t.path.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| {
            *n != low
                && key_file(n)
                    .unlock(&pw("second-password.txt"))
                    .unwrap()
                    .is_some()
        })
        .expect("the key of second-password.txt");
    let mut t2 = TestRepo::fixture("repo-v1");
    t2.key_hint = Some(second.clone());
    let opened = t2.repo().key_id.clone();
    assert_ne!(
        opened, second,
        "the hinted key does not open with password.txt"
    );
    assert!(
        key_file(&opened)
            .unlock(&pw("password.txt"))
            .unwrap()
            .is_some()
    );
}

/// The README's first command runs on a fixture: the table names both locks.
#[test]
fn table_output_on_fixture() {
    crate::needs!("restic");
    let t = TestRepo::fixture("repo-v2");
    let out = t.locksmith().arg("locks").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.contains("2 locks (1 exclusive, 1 shared)"), "{s}");
    assert!(
        s.contains("ID") && s.contains("HELD BY") && s.contains("RESTIC UNLOCK"),
        "{s}"
    );
    assert!(s.contains(&t.repo().id[..8]), "{s}");
}
