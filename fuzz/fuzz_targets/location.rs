//! Repository strings: parsing, and masking that must never let a URL password through.
#![no_main]
use libfuzzer_sys::fuzz_target;
use locksmith::location::{Location, Masked};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // A local path is never sent anywhere and is shown as given; every other location's
    // URL password must be masked.
    let Ok(loc) = Location::parse(s) else {
        return;
    };
    if loc.kind == locksmith::backend::Kind::Local {
        return;
    }
    let shown = Masked::new(s);
    let rest = s.split_once(':').map_or(s, |(_, r)| r);
    if let Ok(url) = url::Url::parse(rest)
        && matches!(url.scheme(), "http" | "https")
        && let Some(pw) = url.password()
    {
        // The URL as shown carries `***` where the password was, and the scrubber knows
        // the password.
        let shown_rest = shown.as_str().split_once(':').map_or("", |(_, r)| r);
        let again = url::Url::parse(shown_rest).expect("the masked URL parses");
        assert_eq!(again.password(), Some("***"), "{s:?} shown as {shown}");
        assert!(Masked::url_passwords(s).iter().any(|p| p == pw), "{s:?}");
    }
});
