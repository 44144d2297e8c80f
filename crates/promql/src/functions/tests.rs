use super::stats::*;
use super::*;

#[track_caller]
fn close(got: f64, want: f64) {
    if want.is_nan() {
        assert!(got.is_nan(), "got {got}, want NaN");
    } else if want.is_infinite() {
        assert_eq!(got, want);
    } else {
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "got {got}, want {want}"
        );
    }
}

#[test]
fn quantile_cases() {
    #[track_caller]
    fn check(q: f64, vals: &[f64], want: f64) {
        close(quantile(q, &mut vals.to_vec()), want);
    }
    check(0.5, &[1.0, 2.0, 3.0], 2.0);
    check(0.25, &[1.0, 2.0, 3.0, 4.0], 1.75);
    check(0.0, &[3.0, 1.0], 1.0);
    check(1.0, &[3.0, 1.0], 3.0);
    check(-1.0, &[1.0], f64::NEG_INFINITY);
    check(2.0, &[1.0], f64::INFINITY);
    check(f64::NAN, &[1.0], f64::NAN);
    check(0.5, &[], f64::NAN);
}

#[test]
fn aggregation_kernels() {
    close(sum(&[1.0, 1e100, 1.0, -1e100]), 2.0);
    close(sum(&[]), 0.0);
    close(sum(&[1.0, f64::NAN]), f64::NAN);
    close(mean(&[1.0, 2.0, 3.0]), 2.0);
    close(mean(&[f64::MAX, f64::MAX]), f64::MAX);
    close(mean(&[f64::INFINITY, 1.0]), f64::INFINITY);
    close(mean(&[f64::INFINITY, f64::NEG_INFINITY]), f64::NAN);
    close(variance(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 4.0);
    close(min(&[f64::NAN, 3.0, 1.0]), 1.0);
    close(max(&[f64::NAN, 3.0, 1.0]), 3.0);
    close(max(&[f64::NAN]), f64::NAN);
    close(mad(&[1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]), 1.0);
}

#[test]
fn rate_extrapolation() {
    // Samples every 10s covering the whole 60s window: plain per-second slope.
    let w: Vec<(i64, f64)> = (1..=6).map(|i| (i * 10_000, i as f64 * 10.0)).collect();
    close(
        extrapolated_rate(&w, 0, 60_000, 0, true, true).unwrap(),
        1.0,
    );
    // Counter reset adds the value before the reset.
    let w = [(10_000, 5.0), (20_000, 1.0)];
    close(
        extrapolated_rate(&w, 0, 20_000, 1, true, false).unwrap(),
        1.0 + 5.0 * 0.0 + 1.0 * 1.0,
    );
    assert_eq!(extrapolated_rate(&[(1, 1.0)], 0, 10, 0, true, true), None);
    close(instant_value(&[(0, 5.0), (2_000, 1.0)], true).unwrap(), 0.5);
    close(
        instant_value(&[(0, 5.0), (2_000, 1.0)], false).unwrap(),
        -4.0,
    );
}

#[test]
fn regression() {
    let w = [(0, 1.0), (1_000, 3.0), (2_000, 5.0)];
    let (slope, intercept) = linear_regression(&w, 0);
    close(slope, 2.0);
    close(intercept, 1.0);
    let (slope, intercept) = linear_regression(&[(0, 4.0), (1_000, 4.0)], 0);
    close(slope, 0.0);
    close(intercept, 4.0);
}

#[test]
fn buckets() {
    #[track_caller]
    fn check(q: f64, b: &[(f64, f64)], want: f64, forced: bool) {
        let (got, f) = bucket_quantile(q, &mut b.to_vec());
        close(got, want);
        assert_eq!(f, forced);
    }
    let b = [(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
    check(0.5, &b, 1.0, false);
    check(0.75, &b, 1.5, false);
    check(1.0, &b, 2.0, false);
    check(0.5, &[(1.0, 10.0)], f64::NAN, false);
    check(
        0.5,
        &[(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 20.0)],
        1.0,
        true,
    );
    check(-0.1, &b, f64::NEG_INFINITY, false);
    check(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)], f64::NAN, false);
    // A NaN count: the bucket is found by Go's bisection, as Prometheus 2.42 answers
    // (side by side in it::promql_diff).
    let nan = [
        (0.1, 1.0),
        (0.5, f64::NAN),
        (1.0, 3.0),
        (f64::INFINITY, 4.0),
    ];
    check(0.9, &nan, 1.0, false);
    check(0.0, &nan, f64::NAN, false);
    check(
        0.5,
        &[(0.1, 1.0), (1.0, 3.0), (f64::INFINITY, f64::NAN)],
        1.0,
        false,
    );
}

#[test]
fn helpers() {
    assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
    assert_eq!(natural_cmp("1.11.3", "1.2.3"), Ordering::Greater);
    assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
    assert_eq!(format_go_float(1e21), "1000000000000000000000");
    assert_eq!(format_go_float(f64::INFINITY), "+Inf");
    assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
    assert_eq!(parse_go_float("0x1f"), Some(31.0));
    assert_eq!(parse_go_float("Hello"), None);
    assert!(go_max(f64::NAN, 1.0).is_nan());
    assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
    assert_eq!(go_min(f64::NAN, f64::NEG_INFINITY), f64::NEG_INFINITY);
    close(
        double_exponential_smoothing(&[(0, 1.0), (1, 2.0), (2, 3.0)], 0.5, 0.5).unwrap(),
        3.0,
    );
}

#[test]
fn dates() {
    use super::time::date_field;
    // 2024-02-29T13:45:00Z, a Thursday.
    let t = 1_709_214_300.0;
    for (f, want) in [
        ("year", 2024.0),
        ("month", 2.0),
        ("day_of_month", 29.0),
        ("day_of_week", 4.0),
        ("day_of_year", 60.0),
        ("days_in_month", 29.0),
        ("hour", 13.0),
        ("minute", 45.0),
    ] {
        assert_eq!(date_field(f, t), want, "{f}");
    }
    assert_eq!(date_field("year", 0.0), 1970.0);
    assert_eq!(date_field("day_of_week", -86_400.0), 3.0);
}

/// Date functions of values beyond int64 seconds (NaN, ±Inf, ±1e19) and near its ends wrap
/// like Go's time package; every expected value was answered by Prometheus 2.42
/// (`f(vector(v))`).
#[test]
fn dates_beyond_the_range_of_go_time() {
    use super::time::date_field;
    for (f, v, want) in [
        ("minute", f64::NAN, 30.0),
        ("minute", f64::INFINITY, 30.0),
        ("minute", f64::NEG_INFINITY, 30.0),
        ("minute", 1e19, 30.0),
        ("minute", -1e19, 30.0),
        ("minute", 9.2e18, 33.0),
        ("minute", -9.2e18, 26.0),
        ("minute", 1e17, 46.0),
        ("minute", -1e17, 13.0),
        ("minute", 1e12, 46.0),
        ("minute", -62135596801.0, 59.0),
        ("minute", 253402300800.0, 0.0),
        ("hour", f64::NAN, 15.0),
        ("hour", f64::INFINITY, 15.0),
        ("hour", f64::NEG_INFINITY, 15.0),
        ("hour", 1e19, 15.0),
        ("hour", -1e19, 15.0),
        ("hour", 9.2e18, 11.0),
        ("hour", -9.2e18, 12.0),
        ("hour", 1e17, 9.0),
        ("hour", -1e17, 14.0),
        ("hour", 1e12, 1.0),
        ("hour", -62135596801.0, 23.0),
        ("hour", 253402300800.0, 0.0),
        ("day_of_month", f64::NAN, 4.0),
        ("day_of_month", f64::INFINITY, 4.0),
        ("day_of_month", f64::NEG_INFINITY, 4.0),
        ("day_of_month", 1e19, 4.0),
        ("day_of_month", -1e19, 4.0),
        ("day_of_month", 9.2e18, 31.0),
        ("day_of_month", -9.2e18, 3.0),
        ("day_of_month", 1e17, 6.0),
        ("day_of_month", -1e17, 27.0),
        ("day_of_month", 1e12, 27.0),
        ("day_of_month", -62135596801.0, 31.0),
        ("day_of_month", 253402300800.0, 1.0),
        ("day_of_week", f64::NAN, 0.0),
        ("day_of_week", f64::INFINITY, 0.0),
        ("day_of_week", f64::NEG_INFINITY, 0.0),
        ("day_of_week", 1e19, 0.0),
        ("day_of_week", -1e19, 0.0),
        ("day_of_week", 9.2e18, 5.0),
        ("day_of_week", -9.2e18, 2.0),
        ("day_of_week", 1e17, 3.0),
        ("day_of_week", -1e17, 4.0),
        ("day_of_week", 1e12, 5.0),
        ("day_of_week", -62135596801.0, 0.0),
        ("day_of_week", 253402300800.0, 6.0),
        ("day_of_year", f64::NAN, 339.0),
        ("day_of_year", f64::INFINITY, 339.0),
        ("day_of_year", f64::NEG_INFINITY, 339.0),
        ("day_of_year", 1e19, 339.0),
        ("day_of_year", -1e19, 339.0),
        ("day_of_year", 9.2e18, 244.0),
        ("day_of_year", -9.2e18, 123.0),
        ("day_of_year", 1e17, 250.0),
        ("day_of_year", -1e17, 117.0),
        ("day_of_year", 1e12, 270.0),
        ("day_of_year", -62135596801.0, 366.0),
        ("day_of_year", 253402300800.0, 1.0),
        ("days_in_month", f64::NAN, 31.0),
        ("days_in_month", f64::INFINITY, 31.0),
        ("days_in_month", f64::NEG_INFINITY, 31.0),
        ("days_in_month", 1e19, 31.0),
        ("days_in_month", -1e19, 31.0),
        ("days_in_month", 9.2e18, 31.0),
        ("days_in_month", -9.2e18, 31.0),
        ("days_in_month", 1e17, 30.0),
        ("days_in_month", -1e17, 30.0),
        ("days_in_month", 1e12, 30.0),
        ("days_in_month", -62135596801.0, 31.0),
        ("days_in_month", 253402300800.0, 31.0),
        ("month", f64::NAN, 12.0),
        ("month", f64::INFINITY, 12.0),
        ("month", f64::NEG_INFINITY, 12.0),
        ("month", 1e19, 12.0),
        ("month", -1e19, 12.0),
        ("month", 9.2e18, 8.0),
        ("month", -9.2e18, 5.0),
        ("month", 1e17, 9.0),
        ("month", -1e17, 4.0),
        ("month", 1e12, 9.0),
        ("month", -62135596801.0, 12.0),
        ("month", 253402300800.0, 1.0),
        ("year", f64::NAN, 292277026596.0),
        ("year", f64::INFINITY, 292277026596.0),
        ("year", f64::NEG_INFINITY, 292277026596.0),
        ("year", 1e19, 292277026596.0),
        ("year", -1e19, 292277026596.0),
        ("year", 9.2e18, 291536396232.0),
        ("year", -9.2e18, -291536392293.0),
        ("year", 1e17, 3168875820.0),
        ("year", -1e17, -3168871881.0),
        ("year", 1e12, 33658.0),
        ("year", -62135596801.0, 0.0),
        ("year", 253402300800.0, 10000.0),
    ] {
        assert_eq!(date_field(f, v), want, "{f}({v})");
    }
}

#[test]
fn go_float_text() {
    // Recorded from Prometheus 2.42 (`/api/v1/query?query=<number>`): ties between two
    // shortest spellings go to the even digit, as Go's strconv does.
    for (v, want) in [
        (1658206780088562.0 + 0.25, "1658206780088562.2"),
        (1658206780088562.0 + 0.75, "1658206780088562.8"),
        (0.3, "0.3"),
        (9007199254740993.0, "9007199254740992"),
        (-0.0, "-0"),
        (1e21, "1000000000000000000000"),
        (1.25e-7, "0.000000125"),
        (-3.5e-10, "-0.00000000035"),
        (1.5e16, "15000000000000000"),
        (123.456, "123.456"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ] {
        assert_eq!(format_go_float(v), want, "{v:e}");
    }
    // Over a deterministic spread of bit patterns: the text reads back as the value, never
    // has an exponent, and is as short as Rust's own shortest spelling.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for v in [f64::from_bits(x), (x % 1_000_000) as f64 / 64.0] {
            if !v.is_finite() {
                continue;
            }
            let s = format_go_float(v);
            assert!(!s.contains(['e', 'E']), "{s}");
            assert_eq!(s.parse::<f64>().ok(), Some(v), "{s}");
            assert_eq!(s.len(), format!("{v}").len(), "{v:e}: {s}");
        }
    }
}

#[test]
fn window_sums_and_means_equal_the_checked_folds() {
    // The fast loops skip kahan_add's infinity check and fall back when the sum is not finite;
    // they must give bit for bit what the checked folds give, overflow and NaN included.
    let big = f64::MAX / 2.0;
    let mut cases: Vec<Vec<f64>> = vec![
        vec![],
        vec![1.0],
        vec![1e20, 1.0, -1e20],
        vec![big, big, -big],
        vec![big, big, big, 1.0],
        vec![f64::INFINITY, 1.0],
        vec![f64::INFINITY, f64::NEG_INFINITY],
        vec![1.0, f64::NAN, 2.0],
        vec![-big, -big, 3.0],
        vec![0.1, 0.2, 0.3, -0.6],
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for len in 1..40 {
        let v = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2_000_001) as f64 / 7.0 - 1e5 + (x >> 40) as f64 * 1e-3
            })
            .collect();
        cases.push(v);
    }
    for vals in cases {
        let w: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v))
            .collect();
        let (mut s, mut c) = (0.0, 0.0);
        for &v in &vals {
            (s, c) = kahan_add(v, s, c);
        }
        let want_sum = s + c;
        let mut acc = MeanAcc::default();
        vals.iter().for_each(|&v| acc.add(v));
        let bits = |v: f64| if v.is_nan() { u64::MAX } else { v.to_bits() };
        assert_eq!(bits(sum_window(&w)), bits(want_sum), "{vals:?}");
        assert_eq!(bits(sum(&vals)), bits(want_sum), "{vals:?}");
        if !vals.is_empty() {
            assert_eq!(bits(mean_window(&w)), bits(acc.value()), "{vals:?}");
            assert_eq!(bits(mean(&vals)), bits(acc.value()), "{vals:?}");
        }
    }
}
