//! Per-lock cost (envelope open, decompress, parse) and key derivation.

use criterion::{Criterion, criterion_group, criterion_main};
use locksmith::locks::{Lock, LockDecoder};
use locksmith::restic::envelope::Key;
use locksmith::restic::kdf::KdfParams;
use locksmith::seal::{id_of, zstd_frame};

/// As the binary does, so that key derivation is timed as locksmith runs it.
#[global_allocator]
static ALLOCATOR: locksmith::Allocator = locksmith::Allocator;

fn sample_lock() -> Lock {
    Lock::from_go_json(
        br#"{"time":"2026-11-24T15:35:40.37577364Z","exclusive":false,"hostname":"backup-node","username":"backup","pid":13202,"uid":1234,"gid":1234}"#,
    )
    .unwrap()
}

fn key() -> Key {
    Key::from_kdf_output(&[7u8; 64])
}

fn per_lock(c: &mut Criterion) {
    let k = key();
    let json = serde_json::to_vec(&sample_lock()).unwrap();
    let v1 = k.seal(&json);
    let v1_id = id_of(&v1);
    let v2 = k.seal(&[&[2u8][..], &zstd_frame(&json)].concat());
    let v2_id = id_of(&v2);
    let mut d1 = LockDecoder::new(&k, 1);
    c.bench_function("decode lock v1 (json)", |b| {
        b.iter(|| d1.decode(&v1_id, &v1).unwrap())
    });
    let mut d2 = LockDecoder::new(&k, 2);
    c.bench_function("decode lock v2 (zstd)", |b| {
        b.iter(|| d2.decode(&v2_id, &v2).unwrap())
    });
}

fn kdf(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrypt N=32768 r=8");
    g.sample_size(10);
    for p in [1, 2, 6] {
        let params = KdfParams { n: 32768, r: 8, p };
        g.bench_function(format!("p={p}"), |b| {
            b.iter(|| params.derive(b"password", &[1u8; 64]).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, per_lock, kdf);
criterion_main!(benches);
