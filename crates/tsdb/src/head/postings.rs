//! The inverted index: label name → value → sorted series refs, plus the list of all refs, and
//! the set algebra that turns label matchers into a list of refs.

use std::collections::HashMap;
use std::sync::Arc;

use model::{Labels, MatchType, Matcher};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Sorted, duplicate-free refs. One ref is stored inline: most values of high-cardinality labels
/// (`instance`, ids) belong to a single series, and a one-element `Vec` would cost a heap block.
/// Boxing the `Vec` keeps the enum at 16 bytes, which matters in maps with one entry per series.
#[derive(Debug, Clone)]
#[allow(clippy::box_collection)] // deliberate: see above
enum RefList {
    One(u64),
    Many(Box<Vec<u64>>),
}

impl RefList {
    fn as_slice(&self) -> &[u64] {
        match self {
            RefList::One(r) => std::slice::from_ref(r),
            RefList::Many(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn insert(&mut self, r: u64) {
        match self {
            RefList::One(x) if *x == r => {}
            RefList::One(x) => {
                let mut v = vec![*x, r];
                v.sort_unstable();
                *self = RefList::Many(Box::new(v));
            }
            RefList::Many(v) => insert_sorted(v, r),
        }
    }

    /// Removes every ref in `sorted_removed`; returns whether the list is now empty.
    fn remove_all(&mut self, sorted_removed: &[u64]) -> bool {
        match self {
            RefList::One(x) => sorted_removed.binary_search(x).is_ok(),
            RefList::Many(v) => {
                v.retain(|r| sorted_removed.binary_search(r).is_err());
                match v.len() {
                    0 => true,
                    1 => {
                        *self = RefList::One(v[0]);
                        false
                    }
                    _ => {
                        if v.capacity() > 2 * v.len() {
                            v.shrink_to_fit();
                        }
                        false
                    }
                }
            }
        }
    }
}

/// Refs are handed out in increasing order, so a new one almost always goes at the end.
/// Lists grow by a quarter rather than doubling: across all lists that halves the average
/// unused capacity (the index holds ~9 refs per series).
fn insert_sorted(v: &mut Vec<u64>, r: u64) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 4);
    }
    match v.last() {
        Some(&last) if last < r => v.push(r),
        None => v.push(r),
        _ => {
            if let Err(i) = v.binary_search(&r) {
                v.insert(i, r);
            }
        }
    }
}

/// Values are `Box<str>`: an `Arc`'s two counters would add 16 bytes to every distinct value,
/// and high-cardinality labels have about one value per series.
#[derive(Default)]
pub(crate) struct MemPostings {
    m: Map<Arc<str>, Map<Box<str>, RefList>>,
    all: Vec<u64>,
}

impl MemPostings {
    pub(crate) fn add(&mut self, r: u64, labels: &Labels) {
        for l in labels.iter() {
            let values = match self.m.get_mut(l.name) {
                Some(v) => v,
                None => self.m.entry(Arc::from(l.name)).or_default(),
            };
            match values.get_mut(l.value) {
                Some(list) => list.insert(r),
                None => {
                    values.insert(Box::from(l.value), RefList::One(r));
                }
            }
        }
        insert_sorted(&mut self.all, r);
    }

    /// Removes the given series (refs with their labels) in one pass per touched list.
    pub(crate) fn remove(&mut self, removed: &[(u64, Labels)]) {
        if removed.is_empty() {
            return;
        }
        let mut refs: Vec<u64> = removed.iter().map(|r| r.0).collect();
        refs.sort_unstable();
        let mut touched: Map<&str, Vec<&str>> = Map::default();
        for (_, labels) in removed {
            for l in labels.iter() {
                touched.entry(l.name).or_default().push(l.value);
            }
        }
        for (name, mut values) in touched {
            values.sort_unstable();
            values.dedup();
            let Some(vm) = self.m.get_mut(name) else {
                continue;
            };
            for v in values {
                if vm.get_mut(v).is_some_and(|list| list.remove_all(&refs)) {
                    vm.remove(v);
                }
            }
            if vm.is_empty() {
                self.m.remove(name);
            } else if vm.capacity() > 4 * vm.len() + 16 {
                vm.shrink_to_fit();
            }
        }
        self.all.retain(|r| refs.binary_search(r).is_err());
        if self.all.capacity() > 2 * self.all.len() + 1024 {
            self.all.shrink_to_fit();
        }
    }

    #[cfg(test)]
    pub(crate) fn all(&self) -> &[u64] {
        &self.all
    }

    pub(crate) fn get(&self, name: &str, value: &str) -> &[u64] {
        self.m
            .get(name)
            .and_then(|v| v.get(value))
            .map_or(&[], RefList::as_slice)
    }

    /// Sorted label names.
    pub(crate) fn label_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.m.keys().map(|k| k.to_string()).collect();
        v.sort_unstable();
        v
    }

    /// Sorted values of `name`.
    pub(crate) fn label_values(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .m
            .get(name)
            .map(|vals| vals.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Union of the lists of values of `name` for which `pred` holds.
    fn union_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> Vec<u64> {
        let Some(values) = self.m.get(name) else {
            return Vec::new();
        };
        let lists: Vec<&[u64]> = values
            .iter()
            .filter(|(v, _)| pred(v))
            .map(|(_, l)| l.as_slice())
            .collect();
        union(&lists)
    }

    /// Series whose value of `m.name` matches `m` (series without the label are not included).
    fn postings_for_matcher(&self, m: &Matcher) -> Vec<u64> {
        if let Some(set) = m.set_matches() {
            let lists: Vec<&[u64]> = set.iter().map(|v| self.get(&m.name, v)).collect();
            return union(&lists);
        }
        self.union_where(&m.name, |v| m.matches(v))
    }

    /// Series that have label `m.name` with a value `m` does not match.
    fn inverse_postings_for_matcher(&self, m: &Matcher) -> Vec<u64> {
        if m.kind == MatchType::NotEqual {
            // The inverse of `!=v` is `=v`: look it up directly.
            return self.get(&m.name, &m.value).to_vec();
        }
        self.union_where(&m.name, |v| !m.matches(v))
    }

    /// Sorted refs of the series matching all `matchers`, with Prometheus's semantics: a
    /// matcher that matches the empty string also selects series that lack the label.
    pub(crate) fn for_matchers(&self, matchers: &[Matcher]) -> Vec<u64> {
        if matchers.is_empty() {
            return self.all.clone();
        }
        // compat: Prometheus's PostingsForMatchers. Matchers on a label that some other matcher
        // requires to be non-empty can be evaluated positively; the rest are subtracted.
        let must_be_set = |name: &str| {
            matchers
                .iter()
                .any(|m| m.name == name && !m.matches_empty())
        };
        let mut its: Vec<Vec<u64>> = Vec::new();
        let mut not_its: Vec<Vec<u64>> = Vec::new();
        for m in matchers {
            let negative = matches!(m.kind, MatchType::NotEqual | MatchType::RegexNoMatch);
            if must_be_set(&m.name) {
                if negative && m.matches_empty() {
                    // l!="foo" where l must be set: subtract l="foo".
                    not_its.push(self.union_where(&m.name, |v| !m.matches(v)));
                } else if negative {
                    // l!="" (or !~ matching no empty): series with l set to a matching value.
                    let it = self.union_where(&m.name, |v| m.matches(v));
                    if it.is_empty() {
                        return Vec::new();
                    }
                    its.push(it);
                } else {
                    let it = self.postings_for_matcher(m);
                    if it.is_empty() {
                        return Vec::new();
                    }
                    its.push(it);
                }
            } else {
                // l="" / l=~"a|" / l!~".+": drop series whose l is set to a value that fails.
                not_its.push(self.inverse_postings_for_matcher(m));
            }
        }
        let out = intersect_all(its).unwrap_or_else(|| self.all.clone());
        without_all(out, &not_its)
    }

    /// `(name, values)` pairs for the stats endpoint: name → [(value, series count)].
    pub(crate) fn for_each_name(
        &self,
        mut f: impl FnMut(&str, &mut dyn Iterator<Item = (&str, usize)>),
    ) {
        for (name, values) in &self.m {
            let mut it = values.iter().map(|(v, l)| (&**v, l.len()));
            f(name, &mut it);
        }
    }

    /// Number of distinct label pairs.
    pub(crate) fn num_label_pairs(&self) -> usize {
        self.m.values().map(Map::len).sum()
    }
}

/// The intersection of `lists`, smallest first so every step is cheap; `None` for no lists
/// (the caller's "all series"). With [`without_all`], the last step of `for_matchers` in the
/// head and in the block index.
pub(crate) fn intersect_all(mut lists: Vec<Vec<u64>>) -> Option<Vec<u64>> {
    if lists.is_empty() {
        return None;
    }
    lists.sort_by_key(Vec::len);
    let mut acc = lists.swap_remove(0);
    for l in &lists {
        acc = intersect(&acc, l);
    }
    Some(acc)
}

/// `out` without the refs of each of `lists`, stopping once nothing is left.
pub(crate) fn without_all(mut out: Vec<u64>, lists: &[Vec<u64>]) -> Vec<u64> {
    for l in lists {
        if out.is_empty() {
            break;
        }
        out = without(&out, l);
    }
    out
}

pub(crate) fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    let mut j = 0;
    for &x in small {
        // Galloping would help lopsided sizes; a moving binary search is close enough.
        j += large[j..].partition_point(|&y| y < x);
        if j == large.len() {
            break;
        }
        if large[j] == x {
            out.push(x);
        }
    }
    out
}

pub(crate) fn without(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j < b.len() && b[j] == x {
            continue;
        }
        out.push(x);
    }
    out
}

pub(crate) fn union(lists: &[&[u64]]) -> Vec<u64> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ => {
            let mut out: Vec<u64> = Vec::with_capacity(lists.iter().map(|l| l.len()).sum());
            for l in lists {
                out.extend_from_slice(l);
            }
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;

    fn index() -> MemPostings {
        let mut p = MemPostings::default();
        p.add(1, &labels! {"n" => "1"});
        p.add(2, &labels! {"n" => "1", "i" => "a"});
        p.add(3, &labels! {"n" => "1", "i" => "b"});
        p.add(4, &labels! {"n" => "2"});
        p.add(5, &labels! {"n" => "2.5"});
        p
    }

    #[track_caller]
    fn check(p: &MemPostings, ms: &[(&str, MatchType, &str)], want: &[u64]) {
        let ms: Vec<Matcher> = ms
            .iter()
            .map(|&(n, k, v)| Matcher::new(k, n, v).unwrap())
            .collect();
        assert_eq!(p.for_matchers(&ms), want, "{ms:?}");
    }

    #[test]
    fn intersect_all_and_without_all() {
        assert_eq!(intersect_all(vec![]), None);
        assert_eq!(intersect_all(vec![vec![4, 7]]), Some(vec![4, 7]));
        let lists = vec![vec![1, 2, 3, 5, 8], vec![2, 3, 5], vec![0, 3, 5, 9]];
        assert_eq!(intersect_all(lists), Some(vec![3, 5]));
        assert_eq!(intersect_all(vec![vec![1, 2], vec![]]), Some(vec![]));
        assert_eq!(
            without_all(vec![1, 2, 3, 4], &[vec![2], vec![4, 9]]),
            [1, 3]
        );
        assert_eq!(without_all(vec![1, 2], &[vec![1, 2], vec![5]]), [0u64; 0]);
        assert_eq!(without_all(vec![1, 2], &[]), [1, 2]);
    }

    #[test]
    fn matchers_like_prometheus() {
        use MatchType::*;
        let p = index();
        // Cases from Prometheus's PostingsForMatchers tests, rewritten for this index.
        check(&p, &[("n", Equal, "1")], &[1, 2, 3]);
        check(&p, &[("n", Equal, "1"), ("i", Equal, "a")], &[2]);
        check(&p, &[("n", Equal, "1"), ("i", Equal, "missing")], &[]);
        check(&p, &[("missing", Equal, "")], &[1, 2, 3, 4, 5]);
        check(&p, &[("n", Equal, "1"), ("i", Equal, "")], &[1]);
        check(&p, &[("n", Equal, "1"), ("i", NotEqual, "")], &[2, 3]);
        check(&p, &[("n", Equal, "1"), ("i", NotEqual, "a")], &[1, 3]);
        check(&p, &[("n", NotEqual, "1")], &[4, 5]);
        check(&p, &[("n", RegexMatch, "^1$")], &[1, 2, 3]);
        check(&p, &[("n", RegexMatch, "1|2")], &[1, 2, 3, 4]);
        check(&p, &[("n", RegexMatch, "2.*")], &[4, 5]);
        check(
            &p,
            &[("n", RegexMatch, "1"), ("i", RegexMatch, "^a?$")],
            &[1, 2],
        );
        check(
            &p,
            &[("n", RegexMatch, "1"), ("i", RegexMatch, "a|")],
            &[1, 2],
        );
        check(
            &p,
            &[("n", RegexMatch, "1"), ("i", RegexNoMatch, ".+")],
            &[1],
        );
        check(
            &p,
            &[("n", RegexMatch, "1"), ("i", RegexNoMatch, "")],
            &[2, 3],
        );
        check(
            &p,
            &[("n", RegexMatch, "1"), ("i", RegexNoMatch, "a")],
            &[1, 3],
        );
        check(&p, &[("n", RegexNoMatch, "^1$")], &[4, 5]);
        check(&p, &[("i", RegexMatch, ".*")], &[1, 2, 3, 4, 5]);
        check(&p, &[("i", RegexMatch, ".+")], &[2, 3]);
        check(
            &p,
            &[("i", RegexNoMatch, "a"), ("i", RegexMatch, ".+")],
            &[3],
        );
        check(&p, &[("i", NotEqual, "a"), ("i", RegexMatch, ".+")], &[3]);
        check(
            &p,
            &[
                ("n", RegexMatch, "1"),
                ("i", NotEqual, "b"),
                ("i", RegexMatch, "a|b"),
            ],
            &[2],
        );
    }

    #[test]
    fn remove_shrinks_and_drops_empty_values() {
        let mut p = index();
        p.remove(&[
            (2, labels! {"n" => "1", "i" => "a"}),
            (4, labels! {"n" => "2"}),
        ]);
        assert_eq!(p.all(), &[1, 3, 5]);
        assert_eq!(p.get("n", "1"), &[1, 3]);
        assert_eq!(p.label_values("i"), vec!["b".to_string()]);
        assert_eq!(
            p.label_values("n"),
            vec!["1".to_string(), "2.5".to_string()]
        );
        p.remove(&[(3, labels! {"n" => "1", "i" => "b"})]);
        assert_eq!(p.label_names(), vec!["n".to_string()]);
    }

    #[test]
    fn ref_list_is_compact() {
        assert_eq!(std::mem::size_of::<RefList>(), 16);
    }

    #[test]
    fn set_ops() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5]), vec![3, 5]);
        assert_eq!(without(&[1, 3, 5, 7], &[3, 4, 5]), vec![1, 7]);
        assert_eq!(union(&[&[1, 5], &[2, 5, 9], &[]]), vec![1, 2, 5, 9]);
    }
}
