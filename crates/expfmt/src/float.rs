//! Sample values as Go reads and prints them.
//!
//! Prometheus parses values with `strconv.ParseFloat` (minus hex floats and
//! digit separators) and prints them with `strconv.FormatFloat(v, 'g', -1, 64)`.
//! Rust's own float parsing and shortest-digit printing are exact, so only the
//! edges differ: which spellings of infinity and NaN are accepted, overflow,
//! and Go's choice between plain and exponent notation.

use std::fmt::Write as _;

/// The NaN Prometheus stores for a scraped NaN (`value.NormalNaN`, which is
/// also what Go's `math.NaN()` returns). Keeping to one bit pattern means a
/// scraped NaN can never be mistaken for the staleness marker.
pub(crate) const NORMAL_NAN: u64 = 0x7ff8_0000_0000_0001;

/// Parses a sample value or OpenMetrics timestamp the way Prometheus 2.42
/// does: Go's `strconv.ParseFloat(s, 64)` without hexadecimal floats or `_`
/// separators. Accepts decimal and exponent notation with an optional sign,
/// `Inf`/`Infinity` with an optional sign and `NaN` without one, all
/// case-insensitive. Values that overflow to infinity are rejected, as Go
/// reports them as range errors; underflow gives zero. NaN comes back as
/// Prometheus's canonical NaN.
pub fn parse_float(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    match *body.first()? {
        b'i' | b'I' => {
            return (body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity"))
                .then_some(if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                });
        }
        // compat: Go accepts NaN only without a sign.
        b'n' | b'N' => {
            return (body.len() == s.len() && body.eq_ignore_ascii_case(b"nan"))
                .then_some(f64::from_bits(NORMAL_NAN));
        }
        b'0'..=b'9' | b'.' => {}
        _ => return None,
    }
    // Most values in real scrapes are small integers; 15 digits always fit
    // a float's 53-bit mantissa exactly.
    if body.len() <= 15 && body.iter().all(u8::is_ascii_digit) {
        let n = body.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let v = n as f64;
        return Some(if negative { -v } else { v });
    }
    // What is left is decimal notation, where Rust and Go agree on both the
    // grammar and the correctly rounded result.
    let v: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    // compat: Go returns a range error when a finite literal overflows.
    (!v.is_infinite()).then_some(v)
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is
/// how Prometheus and its client libraries print sample values: the shortest
/// digits that read back to the same float, in exponent form when the decimal
/// exponent is below -4 or at least 6 (`1e+06`, `1.5e-05`, `123456`,
/// `0.0001`), and `NaN`, `+Inf`, `-Inf` for the special values.
pub fn format_float(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, v);
    String::from_utf8(out).expect("BUG: write_float writes ASCII")
}

/// [`format_float`] into a byte buffer, without allocating beyond its growth.
pub(crate) fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if v.is_sign_negative() {
        out.push(b'-');
    }
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, the same
    // digits Go chooses; only the layout around them differs.
    let mut sci = StackStr::default();
    write!(sci, "{:e}", v.abs()).expect("BUG: an f64 in {:e} fits in 32 bytes");
    let (digits, exp) = sci.split_scientific();
    let nd = digits.len() as i32;
    // Go's 'g' with the shortest precision compares against a fixed 6.
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        // At least two exponent digits, at most three for an f64.
        let e = exp.unsigned_abs();
        if e >= 100 {
            out.push(b'0' + (e / 100) as u8);
        }
        out.push(b'0' + (e / 10 % 10) as u8);
        out.push(b'0' + (e % 10) as u8);
        return;
    }
    // Plain notation: `dp` digits before the decimal point.
    let dp = exp + 1;
    if dp <= 0 {
        out.push(b'0');
    } else {
        for i in 0..dp {
            out.push(if i < nd { digits[i as usize] } else { b'0' });
        }
    }
    if nd > dp {
        out.push(b'.');
        // Numbers below 0.1 get zeros between the point and their digits.
        for i in dp..nd {
            out.push(if i < 0 { b'0' } else { digits[i as usize] });
        }
    }
}

/// A fixed buffer for `{:e}` output, so formatting does not allocate.
#[derive(Default)]
struct StackStr {
    buf: [u8; 32],
    len: usize,
}

impl StackStr {
    /// Splits `d.ddde±x` into its digits (without the point) and exponent.
    fn split_scientific(&mut self) -> (&[u8], i32) {
        let s = &mut self.buf[..self.len];
        let e = s
            .iter()
            .position(|&b| b == b'e')
            .expect("BUG: {:e} output has an exponent");
        let exp = std::str::from_utf8(&s[e + 1..])
            .ok()
            .and_then(|x| x.parse().ok())
            .expect("BUG: {:e} exponent is an integer");
        // Drop the point by shifting the first digit right over it.
        if e > 1 {
            s[1] = s[0];
            (&s[1..e], exp)
        } else {
            (&s[..e], exp)
        }
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        #[track_caller]
        fn check(s: &str, want: Option<f64>) {
            let got = parse_float(s.as_bytes());
            match (got, want) {
                (Some(g), Some(w)) if w.is_nan() => assert!(g.is_nan(), "{s}: {g}"),
                (Some(g), Some(w)) => {
                    assert_eq!(g.to_bits(), w.to_bits(), "{s}: got {g}, want {w}")
                }
                _ => assert_eq!(got, want, "{s}"),
            }
        }
        check("0", Some(0.0));
        check("-0", Some(-0.0));
        check("+5", Some(5.0));
        check("190932", Some(190932.0));
        check("123456789012345678901", Some(123456789012345678901.0));
        check("1.5", Some(1.5));
        check(".5", Some(0.5));
        check("5.", Some(5.0));
        check("1e3", Some(1000.0));
        check("1E+3", Some(1000.0));
        check("1.e-3", Some(0.001));
        check("2.279966416e+09", Some(2.279966416e+09));
        check("1e-400", Some(0.0));
        check("1e400", None);
        check("-1e400", None);
        check("Inf", Some(f64::INFINITY));
        check("+Inf", Some(f64::INFINITY));
        check("-inf", Some(f64::NEG_INFINITY));
        check("infinity", Some(f64::INFINITY));
        check("-INFINITY", Some(f64::NEG_INFINITY));
        check("infin", None);
        check("infinityy", None);
        check("NaN", Some(f64::NAN));
        check("nan", Some(f64::NAN));
        check("nAn", Some(f64::NAN));
        check("+NaN", None);
        check("-nan", None);
        check("nanx", None);
        check("0x10", None);
        check("0x1p3", None);
        check("1_000", None);
        check("", None);
        check("-", None);
        check(".", None);
        check("1e", None);
        check("e5", None);
        check("1.2.3", None);
        check(" 1", None);
        check("1 ", None);
        check("١", None);
    }

    #[test]
    fn nan_is_prometheus_normal_nan() {
        assert_eq!(parse_float(b"NaN").unwrap().to_bits(), NORMAL_NAN);
    }

    #[test]
    fn formats_like_go() {
        #[track_caller]
        fn check(v: f64, want: &str) {
            assert_eq!(format_float(v), want, "{v:?}");
        }
        check(0.0, "0");
        check(-0.0, "-0");
        check(1.0, "1");
        check(-1.0, "-1");
        check(100000.0, "100000");
        check(123456.0, "123456");
        check(999999.0, "999999");
        check(999999.5, "999999.5");
        check(1000000.0, "1e+06");
        check(1234567.0, "1.234567e+06");
        check(12345678.0, "1.2345678e+07");
        check(123456789.0, "1.23456789e+08");
        check(0.0001, "0.0001");
        check(0.00012345, "0.00012345");
        check(0.00001, "1e-05");
        check(0.000015, "1.5e-05");
        check(1.5, "1.5");
        check(-2.25, "-2.25");
        check(0.1, "0.1");
        check(0.3, "0.3");
        check(0.1 + 0.2, "0.30000000000000004");
        check(44.985611511, "44.985611511");
        check(5.937322571024e12, "5.937322571024e+12");
        check(1e21, "1e+21");
        check(1e100, "1e+100");
        check(f64::MAX, "1.7976931348623157e+308");
        check(f64::MIN_POSITIVE, "2.2250738585072014e-308");
        check(5e-324, "5e-324");
        check(f64::NAN, "NaN");
        check(f64::INFINITY, "+Inf");
        check(f64::NEG_INFINITY, "-Inf");
    }

    #[test]
    fn format_then_parse_is_identity() {
        let values = [
            0.1,
            1.0 / 3.0,
            -7.5e-300,
            123456.789,
            4.059092e6,
            9.007199254740993e15,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for v in values {
            let s = format_float(v);
            assert_eq!(parse_float(s.as_bytes()), Some(v), "{s}");
        }
    }
}
