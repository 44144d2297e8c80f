//! Byte sizes as Prometheus's flags and configuration write them (`512MB`, `1GB`, base 2;
//! `KiB`-style spellings too; a plain number is bytes).

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
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        "PB" | "PiB" => 50,
        "EB" | "EiB" => 60,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} too large"))
}

/// Formats a byte size the way [`parse_byte_size`] reads it (largest exact unit).
pub fn format_byte_size(n: u64) -> String {
    for (shift, unit) in [
        (60, "EB"),
        (50, "PB"),
        (40, "TB"),
        (30, "GB"),
        (20, "MB"),
        (10, "KB"),
    ] {
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
