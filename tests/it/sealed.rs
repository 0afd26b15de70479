//! Locks sealed by locksmith's own code that restic cannot make on demand: restic reads
//! them, and both agree on every field.

use chrono::{Duration, FixedOffset, SubsecRound, Utc};
use locksmith::seal::Encoding;

use crate::common::*;

fn edge_locks() -> Vec<locksmith::locks::Lock> {
    let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
    let minus5 = FixedOffset::west_opt(5 * 3600 + 1800).unwrap();
    let mut other = lock_at(
        minutes_ago(2).trunc_subsecs(3).with_timezone(&plus2),
        "otherhost",
        13202,
    );
    other.exclusive = true;
    let old = lock_at(minutes_ago(120).trunc_subsecs(0), "otherhost", 7);
    let mut nobody = lock_at(minutes_ago(40).with_timezone(&minus5), "", 0);
    nobody.username = String::new();
    nobody.uid = 0;
    nobody.gid = 0;
    let future = lock_at(
        (Utc::now() + Duration::minutes(10)).fixed_offset(),
        "otherhost",
        99,
    );
    let mut big_ids = lock_at(minutes_ago(1).trunc_subsecs(7), "otherhost", 2147483647);
    big_ids.uid = 4294967294;
    big_ids.gid = 65534;
    vec![other, old, nobody, future, big_ids]
}

fn sealed_edge_cases_read_by_restic(version: u32, enc: Encoding) {
    let t = TestRepo::new(version);
    let locks = edge_locks();
    let ids: Vec<String> = locks.iter().map(|l| t.seal(l, enc)).collect();
    let report = t.locks_json();
    let ours = by_id(&report);
    assert_eq!(ours.len(), locks.len(), "{report}");
    for (id, lock) in ids.iter().zip(&locks) {
        for r in restics() {
            assert_same_lock(&ours[id], &t.cat_lock_with(r, id));
        }
        assert_eq!(ours[id]["hostname"], lock.hostname);
        assert_eq!(ours[id]["uid"], lock.uid);
    }
    // other host, 2 minutes: nobody here can tell; restic keeps it.
    let v = &ours[&ids[0]];
    assert_eq!(v["holder"], "unknown");
    assert_eq!(v["restic_unlock_removes"], false);
    assert_eq!(v["stale"], false);
    // other host, 2 hours: stale by both rules.
    let v = &ours[&ids[1]];
    assert_eq!(
        (v["stale"].clone(), v["restic_unlock_removes"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(v["abandoned"], true);
    // future time: clock skew, kept.
    let v = &ours[&ids[3]];
    assert_eq!(v["clock_skew"], true);
    assert_eq!(v["restic_unlock_removes"], false);
    assert!(v["age_seconds"].as_i64().unwrap() < 0);
    assert_eq!(report["counts"]["exclusive"], 1);
}

#[test]
fn sealed_v1_json_locks_read_by_restic() {
    crate::needs!("restic");
    sealed_edge_cases_read_by_restic(1, Encoding::Json);
}

#[test]
fn sealed_v2_zstd_locks_read_by_restic() {
    crate::needs!("restic");
    sealed_edge_cases_read_by_restic(2, Encoding::Zstd);
}

#[test]
fn sealed_v2_raw_json_locks_read_by_restic() {
    crate::needs!("restic");
    sealed_edge_cases_read_by_restic(2, Encoding::Json);
}

/// restic's own unlock removes exactly the sealed locks predicted `restic_unlock_removes`.
#[test]
fn restic_unlock_removes_exactly_the_predicted_sealed_locks() {
    crate::needs!("restic");
    for r in restics() {
        predicted_sealed_locks_with(r);
    }
}

fn predicted_sealed_locks_with(r: &Restic) {
    let t = TestRepo::new(2).with(r);
    let here = this_host();
    let dead_pid = dead_pid();
    // A live process that started before its lock was written, but is not restic.
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    for l in [
        lock_at(minutes_ago(3), "otherhost", 1),
        lock_at(minutes_ago(31), "otherhost", 1),
        lock_at(minutes_ago(3), &here, dead_pid),
        lock_at(minutes_ago(45), &here, std::process::id() as i64),
        lock_at(minutes_ago(0), &here, holder.id() as i64),
    ] {
        t.seal(&l, Encoding::Zstd);
    }
    let report = t.locks_json();
    let keep = predicted_keep(&report);
    assert_eq!(keep.len(), 2, "{report}");
    // Our PID on a lock older than this process: the PID was reused; restic removes it by
    // age without probing, which is safe.
    let old = by_id(&report)
        .into_values()
        .find(|l| l["holder"] == "reused")
        .expect("old lock naming a younger process");
    assert_eq!(old["restic_unlock_removes"], true);
    assert_eq!(old["unsafe"], false);
    t.restic_ok(&["unlock"]);
    assert_eq!(t.lock_names(), keep, "{r}");
    let sleeper = by_id(&report)
        .into_values()
        .find(|l| l["pid"] == holder.id())
        .unwrap();
    assert_eq!(sleeper["holder"], "alive");
    assert_eq!(sleeper["holder_command"], "sleep");
    assert_eq!(sleeper["unsafe"], true, "{sleeper}");
    // restic's probe is a real SIGHUP, and it ended the process.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(holder.wait().unwrap().signal(), Some(1), "{r}");
}
