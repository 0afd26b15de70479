//! Text from a repository or a server, made safe for a terminal and a log: a lock's host
//! name, an entry's name or a server's error can hold escape sequences that rewrite the
//! screen, or newlines that forge lines of their own. JSON output needs none of this: it
//! escapes for itself and stays exact.

use std::borrow::Cow;

/// Control characters (C0, DEL, C1) and Unicode's format characters (category Cf): the
/// controls that reorder text on screen (bidi) and the invisible ones (zero-width space,
/// word joiner, soft hyphen, BOM, tags), which make `node\u{200b}1` look like `node1`.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{890}'..='\u{891}' | '\u{8e2}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}'
            | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
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
        // Invisible: each of these made a host name look like another.
        for c in [
            '\u{61c}',
            '\u{200b}',
            '\u{2060}',
            '\u{feff}',
            '\u{ad}',
            '\u{e0041}',
        ] {
            let shown = printable(&format!("node{c}1")).into_owned();
            assert_eq!(shown, format!("node{}1", c.escape_default()), "{c:?}");
        }
        // Combining marks are visible, not format characters: they stay.
        assert_eq!(printable("a\u{301}"), "a\u{301}");
    }
}
