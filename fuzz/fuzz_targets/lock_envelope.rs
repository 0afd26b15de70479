//! A lock file's stored bytes, as any writer to the storage can shape them, under a fixed
//! key: name check, MAC, encoding byte, zstd, JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&version, stored)) = data.split_first() else {
        return;
    };
    let mut d = locksmith::locks::LockDecoder::new(&common::key(), 1 + u32::from(version % 2));
    let _ = d.decode(&locksmith::seal::id_of(stored), stored);
    let _ = d.decode(&"0".repeat(64), stored);
});
