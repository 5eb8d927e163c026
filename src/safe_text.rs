//! Text that is safe to put on an operator's terminal: no control characters (ESC sequences can
//! rewrite the screen or the clipboard), no C1 controls, no bidirectional overrides (which make
//! text read differently from what it is). Values printed by `reveal`, `quarantine` and `report`
//! come from messages, so they pass through [`escape`] first.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as is: C0/C1 controls, DEL, and the Unicode
/// bidirectional formatting characters (LRM, RLM, ALM, LRE…RLO, LRI…PDI).
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as `\u{…}`; borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text (as serde_json writes it) with the unsafe characters it leaves raw — C1 controls, DEL
/// and the bidi formatting characters; C0 ones are already escaped — written as `\uXXXX`. Valid
/// because such characters can only stand inside JSON strings.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // serde_json escapes C0 itself; what is left unsafe is at most U+FFFF, one \u escape.
        if is_unsafe(c) && c != '\n' && c != '\t' && c != '\r' {
            out.push_str(&format!("\\u{:04x}", c as u32));
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
    fn escape_sequences_and_bidi_overrides_are_made_visible() {
        assert_eq!(escape("plain é"), "plain é");
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(
            escape("x\u{202e}y\u{9b}z\u{7f}"),
            "x\\u{202e}y\\u{9b}z\\u{7f}"
        );
        assert_eq!(escape("nul\0"), "nul\\u{0}");
    }

    #[test]
    fn escaped_json_is_still_the_same_json() {
        let value = serde_json::json!({"k\u{202e}": "a\u{85}b\u{1b}c\u{2066}", "n": [1, "\n"]});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = escape_json(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}
