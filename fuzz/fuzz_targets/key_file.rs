//! `keys/<id>`: JSON, base64, scrypt parameters and their bounds, the master key inside.
//! Parameters are kept tiny so that each input costs microseconds, not a real derivation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use locksmith::repo::KeyFile;
use locksmith::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let Ok(key) = serde_json::from_slice::<KeyFile>(data) else {
        return;
    };
    let p = key.params();
    let _ = p.check();
    if p.n <= 64 && p.r <= 4 && p.p <= 2 {
        let _ = key.unlock(&Secret::new("pw"));
    }
});
