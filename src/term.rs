//! Text from outside bosun (a model endpoint, a tool, a cluster) made safe to print on a
//! terminal: control characters are shown escaped, so an answer cannot move the cursor, recolour
//! the screen, set the window title, ring the bell or hide text behind a bidi override.

use std::borrow::Cow;

/// Characters that change how a terminal shows what follows.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // bidi embeddings, overrides and isolates (the "Trojan Source" characters)
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character but newline and tab (ESC, NUL, BEL, CR, C1 codes such as
/// CSI, bidi overrides) replaced by a visible escape: `\x1b`, `\x00`, `\u{202e}`. Borrows when
/// there is nothing to replace.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_and_text_is_kept() {
        assert!(matches!(printable("plain\ttext\nline"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\x1b[31mred\x1b[0m\x07\0b\r"),
            "a\\x1b[31mred\\x1b[0m\\x07\\x00b\\x0d"
        );
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("naïve ✓"), "naïve ✓");
    }
}
