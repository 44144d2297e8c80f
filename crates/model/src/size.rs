//! Byte sizes as Prometheus's flags and configuration write them (`512MB`, `1GB`, base 2;
//! `KiB`-style spellings too; a plain number is bytes).

/// The multiple-of-1024 units, largest first, each with the power of two it stands for and
/// its two spellings (compat: Prometheus reads `KB` as 1024 bytes, the same as `KiB`).
const UNITS: [(u32, &str, &str); 6] = [
    (60, "EB", "EiB"),
    (50, "PB", "PiB"),
    (40, "TB", "TiB"),
    (30, "GB", "GiB"),
    (20, "MB", "MiB"),
    (10, "KB", "KiB"),
];

/// The power of two a size unit stands for: `B` is 0, `KB` and `KiB` 10, up to `EB` and `EiB`
/// 60. `None` for anything else (units are case-sensitive, as in Go's `units.Base2Bytes`).
pub fn unit_shift(unit: &str) -> Option<u32> {
    if unit == "B" {
        return Some(0);
    }
    UNITS
        .iter()
        .find(|&&(_, short, iec)| unit == short || unit == iec)
        .map(|&(shift, _, _)| shift)
}

/// Parses a byte size such as `--storage.tsdb.retention.size=512MB` or a remote write
/// `max_disk_usage: 1GB` (base 2: `1KB` = 1024 bytes).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(format!("invalid size {s:?}"));
    }
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let shift = match unit.trim() {
        "" => 0,
        u => unit_shift(u).ok_or_else(|| format!("invalid size {s:?}: unknown unit {unit:?}"))?,
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// Formats a byte size the way [`parse_byte_size`] reads it (largest exact unit).
pub fn format_byte_size(n: u64) -> String {
    for (shift, unit, _) in UNITS {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_shifts() {
        #[track_caller]
        fn check(unit: &str, want: Option<u32>) {
            assert_eq!(unit_shift(unit), want, "{unit:?}");
        }
        check("B", Some(0));
        check("KB", Some(10));
        check("KiB", Some(10));
        check("MiB", Some(20));
        check("GB", Some(30));
        check("TiB", Some(40));
        check("PB", Some(50));
        check("EB", Some(60));
        check("EiB", Some(60));
        check("", None);
        check("kb", None);
        check("Kb", None);
        check("BiB", None);
        check("K", None);
        check("ZB", None);
        check(" MB", None);
    }

    #[test]
    fn parse_errors_name_the_input() {
        assert_eq!(
            parse_byte_size("1XB"),
            Err(r#"invalid size "1XB": unknown unit "XB""#.to_string())
        );
        assert_eq!(
            parse_byte_size("MB"),
            Err(r#"invalid size "MB""#.to_string())
        );
        assert_eq!(
            parse_byte_size("99999999999EB"),
            Err(r#"size "99999999999EB" too large"#.to_string())
        );
        assert_eq!(parse_byte_size("1 KiB"), Ok(1024));
        assert_eq!(parse_byte_size("7 "), Ok(7));
    }

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_byte_size("0B"), Ok(0));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size(" 2GB "), Ok(2 << 30));
        assert!(parse_byte_size("1XB").is_err());
        assert!(parse_byte_size("").is_err());
        assert!(parse_byte_size("GB").is_err());
        assert!(parse_byte_size("99999999999EB").is_err());
        assert_eq!(format_byte_size(1 << 30), "1GB");
        assert_eq!(format_byte_size(1536), "1536B");
        assert_eq!(format_byte_size(3 << 10), "3KB");
        assert_eq!(format_byte_size(0), "0B");
        for n in [0, 1, 1000, 1 << 20, 3 << 40, 12345 << 10] {
            assert_eq!(parse_byte_size(&format_byte_size(n)), Ok(n));
        }
    }
}
