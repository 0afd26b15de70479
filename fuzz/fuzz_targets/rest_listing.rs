//! A REST server's answer to `GET locks/`, v1 or v2.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&v, body)) = data.split_first() else {
        return;
    };
    let ctype = (v % 2 == 0).then_some("application/vnd.x.restic.rest.v2");
    let _ = locksmith::backend::parse_listing(ctype, body);
});
