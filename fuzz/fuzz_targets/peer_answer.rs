//! A peer's answer, as any agent (or anything listening where one should be) may send it:
//! decoded, measured against this host's clock, and used to judge that host's locks into
//! the table and JSON an operator reads.
#![no_main]
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use locksmith::locks::{Inventory, Lock, LockEntry};
use locksmith::peer::{Consulted, HostAnswer, PeerView};

mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<HostAnswer>(data) else {
        return;
    };
    let host = answer.hostname.clone();
    let sent: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let view = PeerView::measured(answer, &host, sent, std::time::Duration::from_millis(3));
    let mut pids: Vec<i64> = vec![1, 7, -7, (1 << 32) + 7, i64::MAX];
    if let Ok(v) = &view {
        pids.extend(v.answer.processes.iter().map(|p| i64::from(p.pid)));
    }
    let mut inv = Inventory::default();
    for (i, pid) in pids.into_iter().enumerate() {
        let lock = Lock {
            time: (sent - Duration::minutes(i as i64 * 7)).fixed_offset(),
            exclusive: i % 2 == 0,
            hostname: host.clone(),
            username: "u".into(),
            pid,
            uid: 0,
            gid: 0,
        };
        inv.locks.push(LockEntry {
            id: format!("{i:064x}"),
            lock,
            stored_at: None,
        });
    }
    let peers = Consulted::from_views([(host.clone(), view)]);
    let report = locksmith::report::Report::judged(("/r", "id", 2), inv, sent, &common::Host, &peers);
    common::assert_printable(&report.to_table());
    serde_json::from_str::<serde_json::Value>(&report.to_json()).unwrap();
});
