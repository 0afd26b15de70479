//! A lock's plaintext, sealed so that it passes the MAC: zstd, Go's JSON and time rules,
//! the verdict, and the table and JSON an operator reads.
#![no_main]
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use locksmith::locks::{Inventory, LockDecoder, LockEntry, Unreadable};

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&version, plain)) = data.split_first() else {
        return;
    };
    let key = common::key();
    let stored = key.seal_with_iv([7; 16], plain);
    let id = locksmith::seal::id_of(&stored);
    let mut d = LockDecoder::new(&key, 1 + u32::from(version % 2));
    let mut inv = Inventory::default();
    match d.decode(&id, &stored) {
        Ok(lock) => inv.locks.push(LockEntry {
            id,
            lock,
            stored_at: None,
        }),
        Err((kind, error)) => inv.unreadable.push(Unreadable { id, kind, error }),
    }
    let now: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let report = locksmith::report::Report::new("/r", "\u{e9}id\n", 2, inv, now, &common::Host);
    common::assert_printable(&report.to_table());
    // The JSON document is always well-formed.
    serde_json::from_str::<serde_json::Value>(&report.to_json()).unwrap();
});
