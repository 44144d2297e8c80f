//! The routing tree: which routes (and so receivers and timing) an alert belongs to, and the
//! group labels and group key of its aggregation group.

use std::sync::Arc;
use std::time::Duration;

use model::Labels;

use crate::alert::labelset_string;
use crate::matcher::Matchers;

/// A route with its inherited settings resolved.
#[derive(Debug, Clone)]
pub struct Route {
    pub receiver: String,
    /// Sorted label names; empty with `group_by_all` for `...`.
    pub group_by: Vec<String>,
    pub group_by_all: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Matchers,
    pub continue_: bool,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    /// `{}` for the root, then `/`-joined matchers of each level: `{}/{env="prod"}`.
    pub key: String,
    pub routes: Vec<Arc<Route>>,
}

impl Route {
    /// The routes an alert with `labels` is sent to: the deepest matching routes, siblings
    /// after a match only when that match has `continue: true`; the route itself when no
    /// child matches. Empty when this route does not match.
    pub fn match_labels(self: &Arc<Self>, labels: &Labels) -> Vec<Arc<Route>> {
        let mut out = Vec::new();
        self.match_into(labels, &mut out);
        out
    }

    fn match_into(self: &Arc<Self>, labels: &Labels, out: &mut Vec<Arc<Route>>) -> bool {
        if !self.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for child in &self.routes {
            if child.match_into(labels, out) && !child.continue_ {
                break;
            }
        }
        if out.len() == before {
            out.push(self.clone());
        }
        true
    }

    /// The labels of `labels` this route groups by.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by_all {
            return labels.clone();
        }
        Labels::from_sorted(
            labels
                .iter()
                .filter(|l| {
                    self.group_by
                        .binary_search_by(|g| g.as_str().cmp(l.name))
                        .is_ok()
                })
                .map(|l| (l.name, l.value)),
        )
    }

    /// The group key of the aggregation group with these group labels: `{}/{a="b"}:{c="d"}`.
    pub fn group_key(&self, group_labels: &Labels) -> String {
        format!("{}:{}", self.key, labelset_string(group_labels))
    }

    /// Every route of the tree, depth first.
    pub fn walk<'a>(self: &'a Arc<Self>, f: &mut impl FnMut(&'a Arc<Route>)) {
        f(self);
        for c in &self.routes {
            c.walk(f);
        }
    }
}
