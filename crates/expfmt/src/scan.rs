//! Byte-level helpers shared by both grammars: character classes as lookup
//! tables and a word-at-a-time byte search.

/// A 256-entry membership table, indexed by byte.
pub(crate) type ByteClass = [bool; 256];

const fn class(ranges: &[(u8, u8)], singles: &[u8]) -> ByteClass {
    let mut t = [false; 256];
    let mut i = 0;
    while i < ranges.len() {
        let (lo, hi) = ranges[i];
        let mut b = lo as usize;
        while b <= hi as usize {
            t[b] = true;
            b += 1;
        }
        i += 1;
    }
    let mut i = 0;
    while i < singles.len() {
        t[singles[i] as usize] = true;
        i += 1;
    }
    t
}

/// First byte of a metric name: `[a-zA-Z_:]`.
pub(crate) const METRIC_START: ByteClass = class(&[(b'a', b'z'), (b'A', b'Z')], b"_:");
/// Later bytes of a metric name: `[a-zA-Z0-9_:]`.
pub(crate) const METRIC_CONT: ByteClass = class(&[(b'a', b'z'), (b'A', b'Z'), (b'0', b'9')], b"_:");
/// First byte of a label name: `[a-zA-Z_]`.
pub(crate) const LABEL_START: ByteClass = class(&[(b'a', b'z'), (b'A', b'Z')], b"_");
/// Later bytes of a label name: `[a-zA-Z0-9_]`.
pub(crate) const LABEL_CONT: ByteClass = class(&[(b'a', b'z'), (b'A', b'Z'), (b'0', b'9')], b"_");
/// Bytes that end the plain run inside a quoted label value.
pub(crate) const LVALUE_STOP: ByteClass = class(&[], b"\"\\\n");

/// Length of the run of `class` bytes at the start of `b`.
#[inline]
pub(crate) fn run(b: &[u8], class: &ByteClass) -> usize {
    b.iter()
        .position(|&c| !class[c as usize])
        .unwrap_or(b.len())
}

/// Position of the first `needle` in `hay`, eight bytes at a time.
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("BUG: chunks_exact(8)")) ^ pattern;
        // A byte of `word` is zero where `hay` has `needle`. The classic
        // zero-byte test can flag bytes above a real zero, never below one,
        // so the lowest flagged byte is exact.
        let zeros = word.wrapping_sub(LO) & !word & HI;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| offset + p)
}

/// Describes the input at `pos` for an error message: `end of input`,
/// `end of line`, or the next token quoted and escaped.
pub(crate) fn describe(buf: &[u8], pos: usize) -> String {
    const MAX: usize = 24;
    match buf.get(pos) {
        None => "end of input".to_owned(),
        Some(b'\n') => "end of line".to_owned(),
        Some(_) => {
            let rest = &buf[pos..];
            // Blanks are shown with the token after them: `" 3"`, not `" "`.
            let blanks = rest
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(rest.len());
            let mut end = rest[blanks..]
                .iter()
                .position(|&b| b == b'\n' || b == b' ' || b == b'\t')
                .map_or(rest.len(), |i| blanks + i)
                .max(1);
            let cut = end > MAX;
            end = end.min(MAX);
            format!(
                "\"{}{}\"",
                rest[..end].escape_ascii(),
                if cut { "..." } else { "" }
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_naive_search() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 7 % 13) as u8 + b'a').collect();
        for needle in 0..=255u8 {
            for start in 0..20 {
                let h = &hay[start..];
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "needle {needle} start {start}"
                );
            }
        }
        // A needle right after a zero byte, and 0x80 neighbours.
        assert_eq!(find_byte(b"\x00\x01abcdefgh", 1), Some(1));
        assert_eq!(
            find_byte(b"\x80\x80\x80\x80\x80\x80\x80\x80\x00", 0),
            Some(8)
        );
        assert_eq!(find_byte(b"\x01\x00\x01\x00\x01\x00\x01\x00", 0), Some(1));
    }

    #[test]
    fn classes() {
        assert_eq!(run(b"abc_:9{", &METRIC_CONT), 6);
        assert_eq!(run(b"abc_:9{", &LABEL_CONT), 4);
        assert!(METRIC_START[b':' as usize] && !LABEL_START[b':' as usize]);
        assert!(!METRIC_START[b'0' as usize]);
    }

    #[test]
    fn describes_tokens() {
        assert_eq!(describe(b"ab", 2), "end of input");
        assert_eq!(describe(b"ab\n", 2), "end of line");
        assert_eq!(describe(b"a 1x y", 2), "\"1x\"");
        assert_eq!(describe(b"\xff\x00", 0), "\"\\xff\\x00\"");
        assert_eq!(describe(b" x y", 0), "\" x\"");
        assert_eq!(describe(b" \t\n", 0), "\" \\t\"");
        assert_eq!(describe(b"  ", 1), "\" \"");
        assert_eq!(
            describe(&[b'a'; 40], 0),
            format!("\"{}...\"", "a".repeat(24))
        );
    }
}
