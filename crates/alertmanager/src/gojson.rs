//! JSON written the way Go's `encoding/json` writes it, so payloads match Alertmanager's byte for
//! byte: `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`…, control characters other than
//! `\n`, `\r`, `\t` as `\u00XX` (Go 1.19 has no `\b`/`\f`), and a trailing newline as
//! `json.Encoder.Encode` adds.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Backspace => w.write_all(b"\\u0008"),
            CharEscape::FormFeed => w.write_all(b"\\u000c"),
            other => CompactFormatter.write_char_escape(w, other),
        }
    }
}

/// Serialises like Go's `json.NewEncoder(w).Encode(v)` (with the trailing newline).
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising plain data structures into a Vec cannot fail.
    if v.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let s = "a<b>&c\u{2028}\u{8}\u{c}\n\t\u{1}é\"\\";
        assert_eq!(
            String::from_utf8(to_vec(s)).unwrap(),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u0008\\u000c\\n\\t\\u0001é\\\"\\\\\"\n"
        );
    }
}
