//! Cardinality statistics in the shape of Prometheus's `/api/v1/status/tsdb` `data` object.

use serde::Serialize;

use crate::head::Head;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// One row of a top-N list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStats {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
}

/// Keeps the `limit` largest entries; ties sort by name so output is stable.
struct TopN {
    limit: usize,
    items: Vec<Stat>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        TopN {
            limit,
            items: Vec::new(),
        }
    }

    fn push(&mut self, name: impl FnOnce() -> String, value: u64) {
        if self.limit == 0 {
            return;
        }
        if self.items.len() >= self.limit {
            // Cheap reject before allocating the name: the list is kept sorted, smallest last.
            if self.items.last().is_some_and(|min| value < min.value) {
                return;
            }
        }
        let s = Stat {
            name: name(),
            value,
        };
        let pos = self
            .items
            .partition_point(|x| x.value > s.value || (x.value == s.value && x.name < s.name));
        self.items.insert(pos, s);
        self.items.truncate(self.limit);
    }
}

pub(crate) fn compute(head: &Head, limit: usize) -> TsdbStats {
    let mut by_metric = TopN::new(limit);
    let mut values_by_name = TopN::new(limit);
    let mut bytes_by_name = TopN::new(limit);
    let mut by_pair = TopN::new(limit);
    let num_label_pairs;
    {
        let p = head.postings.read();
        num_label_pairs = p.num_label_pairs() as u64;
        p.for_each_name(
            &mut |name: &str, values: &mut dyn Iterator<Item = (&str, usize)>| {
                let (mut count, mut bytes) = (0u64, 0u64);
                for (value, series) in values {
                    count += 1;
                    // compat: Prometheus sums the value length once per series that carries it.
                    bytes += (value.len() * series) as u64;
                    if name == model::labels::METRIC_NAME {
                        by_metric.push(|| value.to_string(), series as u64);
                    }
                    by_pair.push(|| format!("{name}={value}"), series as u64);
                }
                values_by_name.push(|| name.to_string(), count);
                bytes_by_name.push(|| name.to_string(), bytes);
            },
        );
    }
    let (min_time, max_time) = if head.is_empty() {
        (0, 0)
    } else {
        (head.min_time(), head.max_time())
    };
    TsdbStats {
        head_stats: HeadStats {
            num_series: head.num_series(),
            num_label_pairs,
            chunk_count: head
                .metrics
                .head_chunks
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0) as u64,
            min_time,
            max_time,
        },
        series_count_by_metric_name: by_metric.items,
        label_value_count_by_label_name: values_by_name.items,
        memory_in_bytes_by_label_name: bytes_by_name.items,
        series_count_by_label_value_pair: by_pair.items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_keeps_largest_sorted() {
        let mut t = TopN::new(2);
        for (n, v) in [("a", 1), ("b", 5), ("c", 3), ("d", 5)] {
            t.push(|| n.to_string(), v);
        }
        let got: Vec<_> = t.items.iter().map(|s| (s.name.as_str(), s.value)).collect();
        assert_eq!(got, vec![("b", 5), ("d", 5)]);
    }
}
