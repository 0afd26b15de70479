//! `config`, sealed under the master key (so inputs pass the MAC), then decoded.
#![no_main]
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let key = common::key();
    let _ = locksmith::restic::config::decode(&key, data);
    let sealed = key.seal_with_iv([9; 16], data);
    if let Ok((id, _)) = locksmith::restic::config::decode(&key, &sealed) {
        let _ = locksmith::restic::short_id(&id);
    }
});
