//! The parser's table of functions: argument types, optional/variadic arguments and return
//! type, as in Prometheus's `promql/parser/functions.go`. Only functions the engine evaluates
//! are listed, so an unimplemented one fails at parse time ("unknown function").

use crate::ast::ValueType::{self, Matrix as M, Scalar as S, String as Str, Vector as V};

pub(crate) struct Signature {
    pub args: &'static [ValueType],
    /// 0: exactly `args`; n > 0: the last argument may be left out or repeated up to n times
    /// in total; -1: the last argument may be repeated without limit.
    pub variadic: i32,
    pub ret: ValueType,
}

const fn sig(args: &'static [ValueType], variadic: i32, ret: ValueType) -> Signature {
    Signature {
        args,
        variadic,
        ret,
    }
}

const MATH: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "exp",
    "sqrt",
    "ln",
    "log2",
    "log10",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
    "sgn",
    "absent",
    "sort",
    "sort_desc",
    "timestamp",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
];

const OVER_TIME: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "mad_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "absent_over_time",
];

const DATE: &[&str] = &[
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
];

/// The signature of `name`, if it is a function the engine implements.
pub(crate) fn signature(name: &str) -> Option<Signature> {
    if MATH.contains(&name) {
        return Some(sig(&[V], 0, V));
    }
    if OVER_TIME.contains(&name) {
        return Some(sig(&[M], 0, V));
    }
    if DATE.contains(&name) {
        return Some(sig(&[V], 1, V));
    }
    Some(match name {
        "time" | "pi" | "step" | "range" | "start" | "end" => sig(&[], 0, S),
        "min_of" | "max_of" => sig(&[S, S], 0, S),
        "info" => sig(&[V, V], 1, V),
        "quantile_over_time" => sig(&[S, M], 0, V),
        "predict_linear" => sig(&[M, S], 0, V),
        // `holt_winters` is the function's name in Prometheus 2.x (3.x renamed it); both work.
        "double_exponential_smoothing" | "holt_winters" => sig(&[M, S, S], 0, V),
        "clamp" => sig(&[V, S, S], 0, V),
        "clamp_min" | "clamp_max" => sig(&[V, S], 0, V),
        "round" => sig(&[V, S], 1, V),
        "histogram_quantile" => sig(&[S, V], 0, V),
        "histogram_quantiles" => sig(&[V, Str, S], -1, V),
        "histogram_fraction" => sig(&[S, S, V], 0, V),
        "label_replace" => sig(&[V, Str, Str, Str, Str], 0, V),
        "label_join" => sig(&[V, Str, Str, Str], -1, V),
        "sort_by_label" | "sort_by_label_desc" => sig(&[V, Str], -1, V),
        "scalar" => sig(&[V], 0, S),
        "vector" => sig(&[S], 0, V),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_listed_function_is_evaluated_by_the_engine() {
        let all = super::MATH
            .iter()
            .chain(super::OVER_TIME)
            .chain(super::DATE)
            .copied()
            .chain([
                "time",
                "pi",
                "quantile_over_time",
                "predict_linear",
                "double_exponential_smoothing",
                "holt_winters",
                "clamp",
                "round",
                "histogram_quantile",
                "label_replace",
                "label_join",
                "sort_by_label",
                "scalar",
                "vector",
            ]);
        for f in all {
            assert!(crate::functions::supported(f), "{f}");
            assert!(super::signature(f).is_some(), "{f}");
        }
    }
}
