//! Every kind of entry that is not a readable lock ends up in exactly one place.

use std::sync::Arc;

use async_trait::async_trait;
use locksmith::backend::{Backend, BackendError, Dir, Entry, LocalBackend};
use locksmith::repo::Repository;
use locksmith::seal::{Encoding, id_of, seal_foreign, zstd_frame};
use locksmith::secret::Secret;
use serde_json::Value;

use crate::common::*;

fn kinds(report: &Value) -> Vec<(String, String)> {
    report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_string(),
                u["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_damaged_kind_is_reported_with_its_reason() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let good = lock_at(minutes_ago(1), "otherhost", 5);
    let json = serde_json::to_vec(&good).unwrap();
    let good_id = t.seal(&good, Encoding::Zstd);
    let r = t.repo();

    let mut expect = Vec::new();
    let mut put = |bytes: Vec<u8>, name: Option<String>, kind: &str| {
        let id = name.unwrap_or_else(|| id_of(&bytes));
        t.write_lock_file(&id, &bytes);
        expect.push((id, kind.to_string()));
    };
    put(vec![7u8; 20], None, "too_short");
    let (_, sealed) = r.seal_lock(&good, Encoding::Json);
    put(sealed, Some("ab".repeat(32)), "name_mismatch");
    put(seal_foreign(&json).1, None, "mac_mismatch");
    put(
        r.seal_plaintext(&[&[7u8][..], &json].concat()).1,
        None,
        "unknown_encoding",
    );
    put(
        r.seal_plaintext(&[2, 0xde, 0xad, 0xbe, 0xef]).1,
        None,
        "bad_zstd",
    );
    put(r.seal_plaintext(b"{\"time\": 12}").1, None, "bad_json");
    put(r.seal_plaintext(b"{not json").1, None, "bad_json");
    let bomb = [&[2u8][..], &zstd_frame(&vec![b' '; 3 << 20])].concat();
    put(r.seal_plaintext(&bomb).1, None, "too_large");
    let junk = vec![0x55u8; 64 * 1024 + 1];
    put(junk, None, "too_large");
    // A flipped bit, re-named so the name check passes: the MAC catches it.
    let (_, mut flipped) = r.seal_lock(&good, Encoding::Zstd);
    flipped[20] ^= 1;
    put(flipped, None, "mac_mismatch");

    // Not locks at all.
    t.write_lock_file(&format!("{}-tmp-12345", "cd".repeat(32)), b"partial");
    t.write_lock_file(&"ef".repeat(32), b"");
    std::fs::create_dir(t.locks_dir().join("01".repeat(32))).unwrap();

    let report = t.locks_json();
    let mut got = kinds(&report);
    got.sort();
    expect.sort();
    assert_eq!(got, expect, "{report:#}");
    assert_eq!(report["counts"]["total"], 1);
    assert_eq!(report["locks"][0]["id"], good_id.as_str());
    assert_eq!(report["counts"]["unreadable"], expect.len());
    let ignored: Vec<(String, String)> = report["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap()[..6].to_string(),
                i["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ignored,
        vec![
            ("010101".to_string(), "not_a_file".to_string()),
            ("cdcdcd".to_string(), "not_an_id".to_string()),
            ("efefef".to_string(), "empty".to_string()),
        ]
    );
    assert!(report["unreadable"][0]["error"].as_str().unwrap().len() > 10);
    // The table lists them too.
    let out = t.locksmith().arg("locks").output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("unreadable — restic 0.14 skips it; restic 0.15 and later fail"),
        "{table}"
    );
    assert!(table.contains("MAC mismatch"), "{table}");
    assert!(table.contains("zero bytes"), "{table}");
    // restic itself cannot read the damaged ones either, but still reads the good one.
    t.cat_lock(&good_id);
    let (mac_id, _) = expect.iter().find(|(_, k)| k == "mac_mismatch").unwrap();
    let out = t
        .restic()
        .args(["--no-lock", "cat", "lock", mac_id])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A backend whose listing names a lock that is gone when read, as when restic refreshes.
struct Phantom(LocalBackend);

#[async_trait]
impl Backend for Phantom {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        self.0.read_config().await
    }
    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        let mut v = self.0.list(dir).await?;
        if dir == Dir::Locks {
            v.push(Entry {
                name: "9f".repeat(32),
                size: Some(150),
                is_file: true,
                modified: None,
            });
        }
        Ok(v)
    }
    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        self.0.read(dir, name, limit).await
    }
}

#[test]
fn vanished_lock_is_not_an_error() {
    crate::needs!("restic");
    let t = TestRepo::new(1);
    t.seal(&lock_at(minutes_ago(1), "otherhost", 5), Encoding::Json);
    let password = Secret::new(PASSWORD);
    let inv = rt().block_on(async {
        let backend = Phantom(LocalBackend::new(&t.path));
        let open = Repository::open(
            Arc::new(Phantom(LocalBackend::new(&t.path))),
            &password,
            None,
        );
        let reading = locksmith::inventory::Reading {
            backend: &backend,
            concurrency: 4,
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(60),
            progress: &Default::default(),
            redactor: &Default::default(),
            cache: None,
        };
        locksmith::inventory::read(reading, open).await.unwrap().1
    });
    assert_eq!(inv.locks.len(), 1);
    assert_eq!(inv.vanished, vec!["9f".repeat(32)]);
    assert!(inv.unreadable.is_empty() && inv.ignored.is_empty());
}
