//! The labels of a scraped series: scraped labels merged with the target's (`honor_labels`),
//! metric relabelling, and the per-scrape label limits. Runs once per new series; the cache
//! keeps the result.

use std::borrow::Cow;

use model::labels::METRIC_NAME;
use model::relabel::RelabelConfig;
use model::{Labels, LabelsBuilder};

/// Prefix for scraped labels that collide with target labels when `honor_labels` is false.
const EXPORTED_PREFIX: &str = "exported_";

/// The label limits of a scrape config; 0 disables a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LabelLimits {
    pub labels: usize,
    pub name_length: usize,
    pub value_length: usize,
}

/// Final labels of a scraped series, or `None` when metric relabelling drops it.
pub(crate) fn sample_labels(
    name: &str,
    scraped: &[(&str, Cow<'_, str>)],
    target: &Labels,
    honor_labels: bool,
    metric_relabel: &[RelabelConfig],
) -> Option<Labels> {
    let mut lb = LabelsBuilder::new();
    lb.set(METRIC_NAME, name);
    for (n, v) in scraped {
        lb.set(*n, v.as_ref());
    }
    // "Has" in Prometheus counts a scraped label even when its value is empty.
    let scraped_has = |n: &str| n == METRIC_NAME || scraped.iter().any(|(s, _)| *s == n);
    let scraped_get = |n: &str| {
        scraped
            .iter()
            .find(|(s, _)| *s == n)
            .map_or("", |(_, v)| v.as_ref())
    };
    if honor_labels {
        for l in target.iter() {
            if !scraped_has(l.name) {
                lb.set(l.name, l.value);
            }
        }
    } else {
        let mut conflicts: Vec<(String, &str)> = Vec::new();
        for l in target.iter() {
            let existing = scraped_get(l.name);
            if !existing.is_empty() {
                conflicts.push((l.name.to_string(), existing));
            }
            lb.set(l.name, l.value);
        }
        // Shorter names first, then prefix with exported_ until the name is free among the
        // scraped labels, the target labels and the names already chosen.
        conflicts.sort_by_key(|c| c.0.len());
        for i in 0..conflicts.len() {
            let mut new_name = conflicts[i].0.clone();
            loop {
                new_name.insert_str(0, EXPORTED_PREFIX);
                let taken = scraped_has(&new_name)
                    || target.contains(&new_name)
                    || conflicts[..i].iter().any(|c| c.0 == new_name);
                if !taken {
                    break;
                }
            }
            conflicts[i].0 = new_name;
        }
        for (n, v) in &conflicts {
            lb.set(n.as_str(), *v);
        }
    }
    if !metric_relabel.is_empty() && !model::relabel::process_builder(&mut lb, metric_relabel) {
        return None;
    }
    if lb.is_empty() {
        return None;
    }
    Some(lb.labels())
}

/// Checks the label limits; the message is Prometheus's.
pub(crate) fn check_limits(labels: &Labels, limits: &LabelLimits) -> Result<(), String> {
    let met = truncate(labels.get_or_empty(METRIC_NAME), 50);
    if limits.labels > 0 {
        let n = labels.len();
        if n > limits.labels {
            return Err(format!(
                "label_limit exceeded (metric: {met}, number of labels: {n}, limit: {})",
                limits.labels
            ));
        }
    }
    for l in labels.iter() {
        if limits.name_length > 0 && l.name.len() > limits.name_length {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {met}, label name: {}, length: {}, limit: {})",
                truncate(l.name, 50),
                l.name.len(),
                limits.name_length
            ));
        }
        if limits.value_length > 0 && l.value.len() > limits.value_length {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {met}, label name: {}, value: {:?}, length: {}, limit: {})",
                truncate(l.name, 50),
                truncate(l.value, 50),
                l.value.len(),
                limits.value_length
            ));
        }
    }
    Ok(())
}

/// At most `n` characters, like Go's `%.50s`.
fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;

    fn scraped<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, Cow<'a, str>)> {
        pairs.iter().map(|(n, v)| (*n, Cow::Borrowed(*v))).collect()
    }

    #[test]
    fn target_labels_win_and_conflicts_are_exported() {
        let t = labels! {"job" => "j", "instance" => "i:1"};
        let s = scraped(&[("job", "inner"), ("exported_job", "taken"), ("x", "1")]);
        let l = sample_labels("m", &s, &t, false, &[]).unwrap();
        assert_eq!(
            l,
            labels! {"__name__" => "m", "job" => "j", "instance" => "i:1", "x" => "1",
            "exported_job" => "taken", "exported_exported_job" => "inner"}
        );
        // An empty scraped value is no conflict and disappears.
        let s = scraped(&[("instance", ""), ("y", "")]);
        let l = sample_labels("m", &s, &t, false, &[]).unwrap();
        assert_eq!(
            l,
            labels! {"__name__" => "m", "job" => "j", "instance" => "i:1"}
        );
    }

    #[test]
    fn honor_labels_keeps_scraped_values() {
        let t = labels! {"job" => "j", "instance" => "i:1"};
        let s = scraped(&[("job", "inner"), ("instance", "")]);
        let l = sample_labels("m", &s, &t, true, &[]).unwrap();
        // compat: an empty scraped label still counts as present, so the target's is not set.
        assert_eq!(l, labels! {"__name__" => "m", "job" => "inner"});
    }

    #[test]
    fn limits() {
        let l = labels! {"__name__" => "m", "a" => "12345", "bbbbbbbbb" => "1"};
        assert!(check_limits(&l, &LabelLimits::default()).is_ok());
        let e = check_limits(
            &l,
            &LabelLimits {
                labels: 2,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            "label_limit exceeded (metric: m, number of labels: 3, limit: 2)"
        );
        let e = check_limits(
            &l,
            &LabelLimits {
                name_length: 8,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            "label_name_length_limit exceeded (metric: m, label name: bbbbbbbbb, length: 9, limit: 8)"
        );
        let e = check_limits(
            &l,
            &LabelLimits {
                value_length: 4,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            e,
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"12345\", length: 5, limit: 4)"
        );
    }
}
