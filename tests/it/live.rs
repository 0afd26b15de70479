//! Locks held by running restic processes.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;

fn only_lock_of_pid(report: &Value, pid: u32) -> Value {
    let found: Vec<Value> = by_id(report)
        .into_values()
        .filter(|l| l["pid"] == pid)
        .collect();
    assert_eq!(found.len(), 1, "{report:#}");
    found.into_iter().next().unwrap()
}

#[test]
fn live_backup_is_alive_then_gone_and_restic_unlock_agrees() {
    crate::needs!("restic");
    for r in restics() {
        live_backup_is_alive_then_gone_and_restic_unlock_agrees_with(r);
    }
}

fn live_backup_is_alive_then_gone_and_restic_unlock_agrees_with(r: &Restic) {
    let t = TestRepo::new(2).with(r);
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    let pid = backup.id();
    t.seal(&lock_at(minutes_ago(3), "otherhost", 77), Encoding::Zstd);
    t.seal(&lock_at(minutes_ago(50), "otherhost", 78), Encoding::Zstd);

    let report = t.locks_json();
    let live = only_lock_of_pid(&report, pid);
    assert_eq!(live["holder"], "alive");
    // The command is the binary's name: `restic`, or `restic-0.18.0` for the fetched ones.
    let command = live["holder_command"].as_str().unwrap();
    assert!(command.starts_with("restic"), "{r}: {command}");
    assert_eq!(live["exclusive"], false);
    assert_eq!(live["restic_unlock_removes"], false);
    assert_eq!(live["stale"], false);
    assert_eq!(live["unsafe"], false);
    assert_same_lock(&live, &t.cat_lock(live["id"].as_str().unwrap()));

    backup.kill().unwrap();
    backup.wait().unwrap();
    let report = t.locks_json();
    let dead = only_lock_of_pid(&report, pid);
    assert_eq!(dead["holder"], "gone");
    assert_eq!(dead["restic_unlock_removes"], true);
    assert_eq!(dead["stale"], true);
    let keep = predicted_keep(&report);
    assert_eq!(keep.len(), 1);
    t.restic_ok(&["unlock"]);
    assert_eq!(t.lock_names(), keep);
}

#[test]
fn live_exclusive_lock_is_alive() {
    crate::needs!("restic");
    for r in restics() {
        live_exclusive_lock_is_alive_with(r);
    }
}

fn live_exclusive_lock_is_alive_with(r: &Restic) {
    let t = TestRepo::new(1).with(r);
    let mut passwd = t.hold(&["key", "passwd"]);
    let report = t.locks_json();
    let l = only_lock_of_pid(&report, passwd.id());
    assert_eq!(l["exclusive"], true);
    assert_eq!(l["holder"], "alive");
    assert_eq!(l["restic_unlock_removes"], false);
    assert_eq!(report["counts"]["exclusive"], 1);
    passwd.kill().unwrap();
    passwd.wait().unwrap();
}

/// restic's probe sends a real SIGHUP: with the holder's PID now owned by an unrelated
/// process, `restic unlock` terminates that process. locksmith calls this unsafe.
#[test]
fn restic_sighup_probe_kills_process_on_reused_pid() {
    crate::needs!("restic");
    for r in restics() {
        restic_sighup_probe_kills_process_on_reused_pid_with(r);
    }
}

fn restic_sighup_probe_kills_process_on_reused_pid_with(r: &Restic) {
    let t = TestRepo::new(2).with(r);
    let mut bystander = Command::new("sleep").arg("120").spawn().unwrap();
    let pid = bystander.id() as i64;
    // The lock predates the process now holding the PID.
    let id = t.seal(&lock_at(minutes_ago(4), &this_host(), pid), Encoding::Zstd);
    let report = t.locks_json();
    let l = &by_id(&report)[&id];
    assert_eq!(l["holder"], "reused", "{l}");
    assert_eq!(l["stale"], true);
    assert_eq!(l["unsafe"], true);
    assert_eq!(l["restic_unlock_removes"], false);
    assert!(l["reason"].as_str().unwrap().contains("SIGHUP"), "{l}");

    t.restic_ok(&["unlock"]);
    let status = bystander.wait().unwrap();
    assert_eq!(status.signal(), Some(1), "restic's probe delivered SIGHUP");
    assert_eq!(t.lock_names(), vec![id], "and restic kept the lock");
}

/// A lock held by root, inspected by another user: restic (as that user) takes EPERM for
/// "gone" and removes a live lock; locksmith says alive and unsafe.
#[test]
fn root_held_lock_seen_by_unprivileged_user_is_unsafe() {
    crate::needs!("restic");
    if !is_root() {
        skip("needs root to create a throwaway user");
        return;
    }
    let (uid, gid) = ensure_user("locksmith-it");
    for r in restics() {
        root_held_lock_with(r, uid, gid);
    }
}

fn root_held_lock_with(r: &Restic, uid: u32, gid: u32) {
    let t = TestRepo::new(2).with(r);
    let mut backup = t.hold(&["backup", "--stdin", "--stdin-filename", "f"]);
    Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(t.dir.path())
        .status()
        .unwrap();

    let out = as_user(uid, gid, {
        let mut c = t.locksmith();
        c.args(["locks", "--json"]);
        c
    })
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, PASSWORD);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = only_lock_of_pid(&report, backup.id());
    assert_eq!(l["holder"], "alive", "{l}");
    assert_eq!(l["restic_unlock_removes"], true);
    assert_eq!(l["unsafe"], true);
    assert_eq!(l["stale"], false);

    // And restic, run as that user, does remove the live lock (without root's cache,
    // which restic 0.18 and later refuse to use: they cannot set its times).
    let out = as_user(uid, gid, {
        let mut c = t.restic();
        c.args(["--no-cache", "unlock"]);
        c
    })
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(t.lock_names().is_empty(), "{r} removed root's live lock");
    assert!(
        backup.try_wait().unwrap().is_none(),
        "the holder still runs"
    );
    backup.kill().unwrap();
    backup.wait().unwrap();
}
