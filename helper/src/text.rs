//! Text from servers made safe to show on a terminal: control characters escaped, so that a
//! deployment label or an object name can neither send escape sequences (clear the screen, set
//! the window title) nor start a line of its own. Shared by both binaries' tables, messages and
//! log lines. Also an error and its causes as one line of text.

use std::borrow::Cow;

/// `error: cause: cause`, every link of the error's source chain, for messages of one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` with every control character (newlines and tabs included) written as an escape:
/// `\n`, `\r`, `\t`, `\x1b`, `\u{9b}`. For one-line places: table cells, log lines, names.
/// Besides Unicode's Cc (C0, DEL, C1), the bidirectional formatting characters (which make a
/// terminal show text in another order than it is: "Trojan Source", CVE-2021-42574) and the
/// Unicode line and paragraph separators are escaped too: see [`is_escaped`].
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Like [`escape_controls`], but newlines stay: for messages whose lines the program itself
/// breaks (an error listing several files). Server text inside such a message should have been
/// passed through [`escape_controls`] already if a line of its own would mislead.
pub fn escape_controls_keep_newlines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// Whether `c` is written as an escape: Unicode's Cc (`char::is_control`: exactly C0, DEL and
/// C1); the bidirectional controls of Unicode's UAX #9 (ALM U+061C, LRM/RLM U+200E/F, the
/// embeddings and overrides U+202A..U+202E, the isolates U+2066..U+2069); and the line and
/// paragraph separators U+2028/U+2029, which some terminals and editors break lines at.
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let needs = |c: char| is_escaped(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_every_cause_on_one_line() {
        let inner = std::io::Error::other("disk full");
        let outer = std::io::Error::other(Wrapped(inner));
        assert_eq!(error_chain(&outer), "cannot write: disk full");
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("cannot write")
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
    }

    #[test]
    fn c0_del_and_c1_are_escaped() {
        assert_eq!(
            escape_controls("a\x1b[2J\x1b]0;title\x07b"),
            "a\\x1b[2J\\x1b]0;title\\x07b"
        );
        assert_eq!(escape_controls("row\nforged\r\t"), "row\\nforged\\r\\t");
        assert_eq!(
            escape_controls("del\x7f c1\u{9b}31m"),
            "del\\x7f c1\\u{9b}31m"
        );
        assert_eq!(escape_controls("ünïcode ✓ plain"), "ünïcode ✓ plain");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn bidirectional_controls_and_separators_are_escaped() {
        // "Trojan Source": an override shows `admin` where the bytes say `nimda`.
        assert_eq!(
            escape_controls("\u{202e}nimda\u{202c} \u{2066}x\u{2069} \u{200f}\u{61c}"),
            "\\u{202e}nimda\\u{202c} \\u{2066}x\\u{2069} \\u{200f}\\u{61c}"
        );
        assert_eq!(
            escape_controls("a\u{2028}b\u{2029}"),
            "a\\u{2028}b\\u{2029}"
        );
        // Joiners used by emoji and scripts stay as they are.
        assert_eq!(escape_controls("👩\u{200d}💻"), "👩\u{200d}💻");
    }

    #[test]
    fn messages_may_keep_their_own_lines() {
        assert_eq!(
            escape_controls_keep_newlines("two\nlines\x1b[0m"),
            "two\nlines\\x1b[0m"
        );
    }
}
