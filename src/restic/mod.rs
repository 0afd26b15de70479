//! The restic repository format, and only the format: what its files mean, decoded the way
//! restic decodes them. No storage, no verdicts.

pub mod config;
pub mod envelope;
pub mod gotime;
pub mod kdf;
pub mod key;
pub mod lock;
pub mod memory;
pub mod scrypt;

/// A storage name restic gives a file: 64 lower-case hex digits.
pub fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The first eight characters of an ID, as restic shows them. Counts characters, not
/// bytes: an ID read from a damaged or hostile `config` need not be ASCII.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(short_id("0123456789abcdef"), "01234567");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("0123456\u{e9}89"), "0123456\u{e9}");
        assert_eq!(
            short_id(
                "\u{1f512}\u{1f512}\u{1f512}\u{1f512}\u{1f512}\u{1f512}\u{1f512}\u{1f512}\u{1f512}"
            )
            .chars()
            .count(),
            8
        );
    }
}
