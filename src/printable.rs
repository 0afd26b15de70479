//! Text from a repository or a server, made safe for a terminal and a log: a lock's host
//! name, an entry's name or a server's error can hold escape sequences that rewrite the
//! screen, or newlines that forge lines of their own. JSON output needs none of this: it
//! escapes for itself and stays exact.

use std::borrow::Cow;

/// Control characters (C0, DEL, C1) and the Unicode controls that reorder text on screen.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every such character written as a Rust-style escape (`\n`, `\u{1b}`).
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("backup-node"), "backup-node");
        assert_eq!(printable("h\u{1b}[2Jx"), "h\\u{1b}[2Jx");
        assert_eq!(printable("a\nunsafe"), "a\\nunsafe");
        assert_eq!(printable("a\r\tb\u{7f}\u{9b}"), "a\\r\\tb\\u{7f}\\u{9b}");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("Zürich ✓"), "Zürich ✓");
    }
}
