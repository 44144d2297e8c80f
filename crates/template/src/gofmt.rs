//! Go's `fmt` printing for template values: `Sprint`, `Sprintln`, `Sprintf` with the common
//! verbs, flags, width and precision, and `strconv`'s float and quote formatting.

use crate::value::Value;

// compat: Go's fmt rejects widths and precisions above 1e6 (`%!(BADWIDTH)`), which also keeps a
// hostile `printf "%999999999d"` from allocating gigabytes.
const MAX_WIDTH: usize = 1_000_000;

/// `fmt.Sprint`: operands printed with `%v`, a space between two operands when neither is a
/// string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_string(a) && !is_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&format_v(a));
    }
    out
}

/// `fmt.Sprintln`: always a space between operands, and a newline at the end.
pub fn sprintln(args: &[Value]) -> String {
    let mut s = args.iter().map(format_v).collect::<Vec<_>>().join(" ");
    s.push('\n');
    s
}

fn is_string(v: &Value) -> bool {
    matches!(v, Value::String(_))
}

/// `%v` of a value, as `fmt.Print` shows it; a nil prints as `<nil>`.
pub fn format_v(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, &Spec::plain('v'));
    out
}

/// Flags, width, precision and verb of one `%` directive.
#[derive(Clone, Debug, Default)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

impl Spec {
    fn plain(verb: char) -> Spec {
        Spec {
            verb,
            ..Spec::default()
        }
    }
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut argi = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // Flags.
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '+' => spec.plus = true,
                '-' => spec.minus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // Width.
        let mut bad_width = false;
        if chars.peek().is_some_and(|&(_, c)| c == '*') {
            chars.next();
            match args.get(argi) {
                Some(Value::Int(n)) => {
                    argi += 1;
                    if *n < 0 {
                        spec.minus = true;
                    }
                    let n = n.unsigned_abs() as usize;
                    if n > MAX_WIDTH {
                        bad_width = true;
                    } else {
                        spec.width = Some(n);
                    }
                }
                Some(_) => {
                    argi += 1;
                    bad_width = true;
                }
                None => bad_width = true,
            }
        } else {
            match read_num(&mut chars) {
                Some(n) if n > MAX_WIDTH => bad_width = true,
                Some(n) => spec.width = Some(n),
                None => {}
            }
        }
        if bad_width {
            out.push_str("%!(BADWIDTH)");
        }
        // Precision.
        if chars.peek().is_some_and(|&(_, c)| c == '.') {
            chars.next();
            if chars.peek().is_some_and(|&(_, c)| c == '*') {
                chars.next();
                match args.get(argi) {
                    Some(Value::Int(n)) if *n >= 0 && (*n as usize) <= MAX_WIDTH => {
                        argi += 1;
                        spec.prec = Some(*n as usize);
                    }
                    Some(_) => {
                        argi += 1;
                        out.push_str("%!(BADPREC)");
                    }
                    None => out.push_str("%!(BADPREC)"),
                }
            } else {
                match read_num(&mut chars) {
                    Some(n) if n > MAX_WIDTH => out.push_str("%!(BADPREC)"),
                    n => spec.prec = Some(n.unwrap_or(0)),
                }
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        spec.verb = verb;
        if spec.minus {
            spec.zero = false;
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        };
        argi += 1;
        if verb == 'T' {
            pad(&mut out, arg.type_name(), &spec);
            continue;
        }
        write_value(&mut out, arg, &spec);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(a.type_name());
            out.push('=');
            out.push_str(&format_v(a));
        }
        out.push(')');
    }
    out
}

fn read_num(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(&(_, c)) = chars.peek() {
        let Some(d) = c.to_digit(10) else { break };
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

fn bad_verb(out: &mut String, v: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match v {
        Value::Nil => out.push_str("<nil>"),
        _ => {
            out.push_str(v.type_name());
            out.push('=');
            out.push_str(&format_v(v));
        }
    }
    out.push(')');
}

/// Writes `s` padded to the spec's width (in runes), with spaces or, for `0`, zeros.
fn pad(out: &mut String, s: &str, spec: &Spec) {
    let Some(width) = spec.width else {
        out.push_str(s);
        return;
    };
    let n = s.chars().count();
    if n >= width {
        out.push_str(s);
        return;
    }
    let fill = if spec.zero { '0' } else { ' ' };
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', width - n));
    } else {
        out.extend(std::iter::repeat_n(fill, width - n));
        out.push_str(s);
    }
}

fn write_value(out: &mut String, v: &Value, spec: &Spec) {
    match v {
        Value::Nil => match spec.verb {
            'v' => pad(out, "<nil>", spec),
            _ => bad_verb(out, v, spec.verb),
        },
        Value::Bool(b) => match spec.verb {
            'v' | 't' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, v, spec.verb),
        },
        Value::Int(i) => write_int(out, *i, spec, v),
        Value::Float(f) => write_float(out, *f, spec, v),
        Value::String(s) => write_str(out, s, spec, v),
        Value::List(items) => write_list(out, items, spec),
        Value::Map(m) => write_map(out, m.iter().map(|(k, v)| (k, v.clone())), spec),
        Value::StrMap(m) => write_map(
            out,
            m.iter().map(|(k, v)| (k, Value::from(v.as_str()))),
            spec,
        ),
        Value::Object(o) => {
            if let (Some(s), 'v' | 's' | 'q' | 'x' | 'X') = (o.display(), spec.verb) {
                write_str(out, &s, spec, v);
            } else if let Some(u) = o.underlying() {
                write_value(out, &u, spec);
            } else {
                pad(out, &format!("{{{}}}", o.type_name()), spec);
            }
        }
        Value::Func(_) => match spec.verb {
            'v' | 'p' => pad(out, "0xc000000000", spec),
            _ => bad_verb(out, v, spec.verb),
        },
    }
}

fn write_list(out: &mut String, items: &[Value], spec: &Spec) {
    out.push('[');
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(out, e, spec);
    }
    out.push(']');
}

fn write_map<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a String, Value)>,
    spec: &Spec,
) {
    out.push_str("map[");
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(out, &Value::from(k.as_str()), spec);
        out.push(':');
        write_value(out, &v, spec);
    }
    out.push(']');
}

fn write_str(out: &mut String, s: &str, spec: &Spec, v: &Value) {
    let truncated: String;
    let s = match spec.prec {
        Some(p) if matches!(spec.verb, 'v' | 's' | 'q' | 'x' | 'X') => {
            truncated = s.chars().take(p).collect();
            truncated.as_str()
        }
        _ => s,
    };
    match spec.verb {
        'v' | 's' => pad(out, s, spec),
        'q' => {
            if spec.sharp && can_backquote(s) {
                pad(out, &format!("`{s}`"), spec);
            } else {
                pad(out, &quote(s), spec);
            }
        }
        'x' | 'X' => {
            let mut h = String::with_capacity(s.len() * 3);
            for (i, b) in s.bytes().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    h.push_str(if spec.verb == 'x' { "0x" } else { "0X" });
                }
                push_hex_byte(&mut h, b, spec.verb == 'X');
            }
            pad(out, &h, spec);
        }
        _ => bad_verb(out, v, spec.verb),
    }
}

fn push_hex_byte(out: &mut String, b: u8, upper: bool) {
    let digits = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push(digits[usize::from(b >> 4)] as char);
    out.push(digits[usize::from(b & 15)] as char);
}

fn write_int(out: &mut String, i: i64, spec: &Spec, v: &Value) {
    let (base, upper) = match spec.verb {
        'd' | 'v' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), spec);
            return;
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c), spec);
            return;
        }
        'U' => {
            let s = format!("U+{:04X}", i);
            pad(out, &s, spec);
            return;
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            bad_verb(out, v, spec.verb);
            return;
        }
        _ => {
            bad_verb(out, v, spec.verb);
            return;
        }
    };
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if upper => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    // Precision is a minimum number of digits; `%.0d` of 0 prints nothing.
    let mut min_digits = spec.prec;
    if spec.prec == Some(0) && u == 0 {
        digits.clear();
    }
    if min_digits.is_none() && spec.zero && !spec.minus {
        // compat: Go's zero padding counts the sign but not a 0x prefix.
        if let Some(w) = spec.width {
            let sign = usize::from(neg || spec.plus || spec.space);
            min_digits = Some(w.saturating_sub(sign));
        }
    }
    if let Some(m) = min_digits
        && digits.len() < m
    {
        digits = "0".repeat(m - digits.len()) + &digits;
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    } else if spec.plus {
        s.push('+');
    } else if spec.space {
        s.push(' ');
    }
    if spec.sharp || spec.verb == 'O' {
        match (base, spec.verb) {
            (2, _) => s.push_str("0b"),
            (8, 'O') => s.push_str("0o"),
            (8, _) if !digits.starts_with('0') => s.push('0'),
            (16, _) => s.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    s.push_str(&digits);
    let spaces = Spec {
        zero: false,
        ..spec.clone()
    };
    pad(out, &s, &spaces);
}

fn write_float(out: &mut String, f: f64, spec: &Spec, v: &Value) {
    let body = match spec.verb {
        'v' => format_float(f, 'g', spec.prec.map(|p| p as i32).unwrap_or(-1)),
        'g' | 'G' | 'e' | 'E' | 'f' | 'F' => {
            let default = if matches!(spec.verb, 'g' | 'G') {
                -1
            } else {
                6
            };
            let prec = spec.prec.map(|p| p as i32).unwrap_or(default);
            format_float(f, spec.verb, prec)
        }
        _ => {
            bad_verb(out, v, spec.verb);
            return;
        }
    };
    let (neg, digits) = match body.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, body.strip_prefix('+').unwrap_or(&body).to_string()),
    };
    let special = f.is_nan() || f.is_infinite();
    let sign = if neg {
        "-"
    } else if spec.plus || (f.is_infinite() && !spec.space) {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    // compat: Go prints NaN without a sign unless asked, and never zero-pads NaN or Inf.
    if spec.zero
        && !special
        && !spec.minus
        && let Some(w) = spec.width
    {
        let n = sign.len() + digits.chars().count();
        out.push_str(sign);
        if n < w {
            out.extend(std::iter::repeat_n('0', w - n));
        }
        out.push_str(&digits);
        return;
    }
    let spaces = Spec {
        zero: false,
        ..spec.clone()
    };
    pad(out, &format!("{sign}{digits}"), &spaces);
}

/// Decimal digits of |f| with the position of the decimal point: the value is
/// `0.d1d2d3… × 10^dp`.
struct Decimal {
    digits: Vec<u8>,
    dp: i32,
}

impl Decimal {
    /// Parses Rust's `{:e}` output (`1.2345e6`).
    fn from_exp(s: &str) -> Decimal {
        let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.iter().all(|&d| d == b'0') {
            return Decimal {
                digits: vec![b'0'],
                dp: 1,
            };
        }
        Decimal {
            digits,
            dp: exp + 1,
        }
    }

    /// The shortest digits that round-trip.
    fn shortest(f: f64) -> Decimal {
        Decimal::from_exp(&format!("{:e}", f.abs()))
    }

    /// `n` significant digits, correctly rounded, trailing zeros trimmed.
    fn significant(f: f64, n: usize) -> Decimal {
        Decimal::from_exp(&format!("{:.*e}", n.saturating_sub(1), f.abs()))
    }

    fn nd(&self) -> i32 {
        self.digits.len() as i32
    }

    /// `d.ddde±xx` with `prec` digits after the point.
    fn fmt_e(&self, prec: i32, e: char) -> String {
        let mut s = String::new();
        s.push(self.digits.first().map_or('0', |&d| d as char));
        if prec > 0 {
            s.push('.');
            let mut i = 1;
            let m = self.nd().min(prec + 1);
            while i < m {
                s.push(self.digits[i as usize] as char);
                i += 1;
            }
            while i <= prec {
                s.push('0');
                i += 1;
            }
        }
        s.push(e);
        let exp = if self.digits == [b'0'] {
            0
        } else {
            self.dp - 1
        };
        s.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            s.push('0');
        }
        s.push_str(&exp.to_string());
        s
    }

    /// `ddd.ddd` with `prec` digits after the point.
    fn fmt_f(&self, prec: i32) -> String {
        let mut s = String::new();
        if self.dp > 0 {
            let m = self.nd().min(self.dp);
            for i in 0..m {
                s.push(self.digits[i as usize] as char);
            }
            for _ in m..self.dp {
                s.push('0');
            }
        } else {
            s.push('0');
        }
        if prec > 0 {
            s.push('.');
            for i in 1..=prec {
                let j = self.dp + i - 1;
                let c = if j >= 0 && j < self.nd() {
                    self.digits[j as usize] as char
                } else {
                    '0'
                };
                s.push(c);
            }
        }
        s
    }
}

/// Go's `strconv.FormatFloat(f, verb, prec, 64)` for verbs `e E f F g G` (`prec` -1 means
/// shortest).
pub fn format_float(f: f64, verb: char, prec: i32) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let neg = f.is_sign_negative();
    let body = match verb {
        'f' | 'F' => {
            if prec < 0 {
                let d = Decimal::shortest(f);
                d.fmt_f((d.nd() - d.dp).max(0))
            } else {
                format!("{:.*}", prec as usize, f.abs())
            }
        }
        'e' | 'E' => {
            let e = if verb == 'E' { 'E' } else { 'e' };
            if prec < 0 {
                let d = Decimal::shortest(f);
                d.fmt_e(d.nd() - 1, e)
            } else {
                Decimal::significant(f, prec as usize + 1).fmt_e(prec, e)
            }
        }
        _ => {
            let e = if verb == 'G' { 'E' } else { 'e' };
            let shortest = prec < 0;
            let d = if shortest {
                Decimal::shortest(f)
            } else {
                Decimal::significant(f, prec.max(1) as usize)
            };
            let mut prec = if shortest { d.nd() } else { prec.max(1) };
            let mut eprec = prec;
            if eprec > d.nd() && d.nd() >= d.dp {
                eprec = d.nd();
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec {
                if prec > d.nd() {
                    prec = d.nd();
                }
                d.fmt_e(prec - 1, e)
            } else {
                if prec > d.dp {
                    prec = d.nd();
                }
                d.fmt_f((prec - d.dp).max(0))
            }
        }
    };
    if neg { format!("-{body}") } else { body }
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

/// Go's `unicode.IsPrint`, closely enough: graphic characters and the ASCII space.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF
        | 0xFFFE | 0xFFFF)
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.QuoteRune`.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        #[track_caller]
        fn check(f: f64, verb: char, prec: i32, want: &str) {
            assert_eq!(format_float(f, verb, prec), want, "{f} {verb} {prec}");
        }
        check(1e6, 'g', -1, "1e+06");
        check(123456.0, 'g', -1, "123456");
        check(1234567.0, 'g', -1, "1.234567e+06");
        check(0.1, 'g', -1, "0.1");
        check(0.0001, 'g', -1, "0.0001");
        check(0.00001, 'g', -1, "1e-05");
        check(3.25, 'g', -1, "3.25");
        check(0.0, 'g', -1, "0");
        check(-2.5, 'g', -1, "-2.5");
        check(1e21, 'g', -1, "1e+21");
        check(1e100, 'g', -1, "1e+100");
        check(1.2345678, 'g', 4, "1.235");
        check(1000.0, 'g', 4, "1000");
        check(12345.0, 'g', 4, "1.234e+04");
        check(1.5, 'g', 4, "1.5");
        check(100.0, 'g', 4, "100");
        check(0.0, 'g', 4, "0");
        check(3.14259, 'f', 2, "3.14");
        check(2.0, 'f', 6, "2.000000");
        check(1234.5678, 'e', 2, "1.23e+03");
        check(0.0, 'e', 6, "0.000000e+00");
        check(f64::NAN, 'g', 4, "NaN");
        check(f64::INFINITY, 'g', 4, "+Inf");
        check(f64::NEG_INFINITY, 'g', -1, "-Inf");
    }

    #[test]
    fn printf_like_go() {
        #[track_caller]
        fn check(format: &str, args: &[Value], want: &str) {
            assert_eq!(sprintf(format, args), want, "{format}");
        }
        let s = |v: &str| Value::from(v);
        check("%d", &[Value::Int(42)], "42");
        check(
            "%5d|%-5d|%05d",
            &[5.into(), 5.into(), (-5).into()],
            "    5|5    |-0005",
        );
        check(
            "%x %X %o %b",
            &[255.into(), 255.into(), 8.into(), 5.into()],
            "ff FF 10 101",
        );
        check("%#x %#o", &[255.into(), 8.into()], "0xff 010");
        check("%+d % d", &[5.into(), 5.into()], "+5  5");
        check(
            "%c %q %U",
            &[65.into(), 65.into(), 65.into()],
            "A 'A' U+0041",
        );
        check(
            "%s|%5s|%-5s|%.2s",
            &[s("ab"), s("ab"), s("ab"), s("abc")],
            "ab|   ab|ab   |ab",
        );
        check("%q", &[s("a\"b\n")], r#""a\"b\n""#);
        check("%x", &[s("hi")], "6869");
        check("%v %v", &[true.into(), Value::Nil], "true <nil>");
        check(
            "%.2f %8.3f %-8.1f|",
            &[3.14259.into(), 2.5.into(), 1.0.into()],
            "3.14    2.500 1.0     |",
        );
        check(
            "%08.3f %+.1f",
            &[(-3.5).into(), 2.0.into()],
            "-003.500 +2.0",
        );
        check(
            "%e %g %G",
            &[1234.5678.into(), 0.000012.into(), 1e-7.into()],
            "1.234568e+03 1.2e-05 1E-07",
        );
        check("%d", &[s("x")], "%!d(string=x)");
        check("%s", &[5.into()], "%!s(int=5)");
        check("%d %d", &[1.into()], "1 %!d(MISSING)");
        check("%d", &[1.into(), s("a")], "1%!(EXTRA string=a)");
        check("100%%", &[], "100%");
        check("%v", &[Value::list([1.into(), s("a")])], "[1 a]");
        check("%d", &[Value::list([1.into(), 2.into()])], "[1 2]");
        check("%q", &[Value::list([s("a"), s("b")])], r#"["a" "b"]"#);
        check(
            "%v",
            &[Value::map([("b", Value::Int(2)), ("a", Value::Int(1))])],
            "map[a:1 b:2]",
        );
        check("%*d", &[4.into(), 7.into()], "   7");
        check("%6.2f%%", &[99.5.into()], " 99.50%");
        check("%f", &[f64::NAN.into()], "NaN");
        check("%05.1f", &[f64::INFINITY.into()], " +Inf");
        check("%!", &[], "%!!(MISSING)");
        check("abc%", &[], "abc%!(NOVERB)");
    }

    #[test]
    fn sprint_spacing() {
        let s = |v: &str| Value::from(v);
        assert_eq!(sprint(&[1.into(), 2.into()]), "1 2");
        assert_eq!(sprint(&[s("a"), 1.into(), s("b")]), "a1b");
        assert_eq!(sprint(&[1.5.into(), true.into()]), "1.5 true");
        assert_eq!(sprintln(&[s("a"), 1.into()]), "a 1\n");
    }
}
