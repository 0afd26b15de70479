use chrono::{DateTime, Duration, Utc};

use super::*;

fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
}

fn p(pid: i32, host: Option<&str>, here: bool, started: i64, restic: bool) -> NsProcess {
    NsProcess {
        pid,
        hostname: host.map(str::to_string),
        here,
        started: Some(t(started)),
        restic,
    }
}

/// A host "node" with a container sharing its name ("node", PID 7 inside), a Pod "pod1"
/// (PID 7 inside too, but a `sleep` started after the lock), and a namespace whose name
/// could not be read (PID 9 inside, restic).
fn kernel() -> Kernel {
    Kernel {
        names: ["node", "pod1"].into_iter().map(String::from).collect(),
        processes: vec![
            p(7, Some("node"), true, -90, false),
            p(7, Some("node"), false, -60, true),
            p(7, Some("pod1"), false, 5, false),
            p(9, None, false, -60, true),
            p(11, Some("pod1"), false, 5, true),
        ],
        unseen: vec![],
    }
}

#[test]
fn the_holder_is_found_in_its_namespace_by_name_pid_and_age() {
    use Found::*;
    let k = kernel();
    #[rustfmt::skip]
    let rows: &[(&str, i64, i64, bool, Found)] = &[
        // (lock's host, its PID, its time, others only, found)
        ("node", 7, 0, true,  Holder { here: false, named: true }),
        ("node", 7, 0, false, Holder { here: false, named: true }),
        ("node", 7, -70, true, Stranger),          // the restic started after this lock
        ("pod1", 7, 0, false, Stranger),           // a sleep started after the lock
        ("pod1", 11, 0, false, Stranger),          // a restic younger than the lock
        ("pod1", 11, 10, false, Holder { here: false, named: true }),
        ("pod1", 9, 0, false, Holder { here: false, named: false }), // unreadable name: alive
        ("other", 9, 0, false, Holder { here: false, named: false }),
        ("pod1", 8, 0, false, Nothing),
        ("node", 0, 0, false, Nothing),
        ("node", -7, 0, false, Nothing),
        ("node", (1 << 32) + 7, 0, false, Nothing),
    ];
    for (host, pid, time, others, want) in rows {
        assert_eq!(
            k.holder(host, *pid, t(*time), *others),
            *want,
            "{host} {pid} at {time}"
        );
    }
}

#[test]
fn a_start_within_the_slack_is_the_holder() {
    let k = Kernel {
        processes: vec![p(5, Some("h"), false, 0, true)],
        ..Kernel::default()
    };
    let lock_time = t(0) - START_TIME_SLACK + Duration::milliseconds(500);
    assert!(matches!(
        k.holder("h", 5, lock_time, true),
        Found::Holder { .. }
    ));
    assert_eq!(
        k.holder("h", 5, t(0) - Duration::seconds(3), true),
        Found::Stranger
    );
}

#[test]
fn two_reporters_of_one_name_are_both_named() {
    let a = kernel();
    let mut b = Kernel::default();
    b.names.insert("pod1".into());
    let claims = Claims::new([("node1", &a), ("node2", &b)]);
    assert_eq!(claims.of("pod1"), ["node1", "node2"]);
    assert_eq!(claims.of("node"), ["node1"]);
    assert!(claims.of("elsewhere").is_empty());
}
