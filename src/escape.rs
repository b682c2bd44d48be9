//! Text that reaches a text log or the console is escaped so one record is one line.
//!
//! A file name may hold any byte but `/` and NUL: a newline in a name would otherwise start a
//! line of the name owner's choosing in the logfile (`evil\nroot::0:0:...`), and an escape
//! sequence would drive the terminal of whoever reads the console. JSON logs need none of
//! this: their serializer escapes every string.
//!
//! The escaping is Rust's: `\n`, `\r`, `\t`, `\\` for a backslash (so the escaping can be
//! undone without ambiguity), `\xNN` for the other ASCII control characters and DEL, and
//! `\u{NN}` for the C1 controls and the Unicode line and paragraph separators. Bytes that are
//! not UTF-8 are shown as U+FFFD, as `Path::display` shows them (the JSON log does the same).

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every character that could break a line or drive a terminal escaped.
pub fn line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(line("a b/c.txt é"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_backslashes_are_escaped() {
        assert_eq!(
            line("evil\nroot::0:0\r\t\x1b[31m\\\x7f"),
            "evil\\nroot::0:0\\r\\t\\x1b[31m\\\\\\x7f"
        );
        assert_eq!(line("a\u{85}b\u{2028}c"), "a\\u{85}b\\u{2028}c");
    }

    #[test]
    fn escaped_text_has_no_control_characters() {
        for b in 0u32..0x3000 {
            let c = char::from_u32(b).unwrap_or('x');
            let s = line(&c.to_string()).into_owned();
            assert!(
                !s.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{b:#x}"
            );
        }
    }
}
