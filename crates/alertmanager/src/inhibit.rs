//! Inhibition: an alert matching a rule's target matchers is muted while a firing alert matches
//! the rule's source matchers and has the same values for the rule's `equal` labels.

use std::collections::HashMap;

use model::Labels;
use parking_lot::RwLock;

use crate::alert::{Alert, fingerprint};
use crate::config::InhibitRule;
use crate::time::Time;

struct Rule {
    cfg: InhibitRule,
    /// Alerts that match the source matchers, by fingerprint.
    sources: RwLock<HashMap<u64, Alert>>,
}

/// The inhibition rules of one configuration with the source alerts seen so far.
pub struct Inhibitor {
    rules: Vec<Rule>,
}

impl Inhibitor {
    pub fn new(rules: &[InhibitRule]) -> Inhibitor {
        Inhibitor {
            rules: rules
                .iter()
                .map(|r| Rule {
                    cfg: r.clone(),
                    sources: RwLock::new(HashMap::new()),
                })
                .collect(),
        }
    }

    /// Records an alert (new or updated) as a potential source.
    pub fn observe(&self, a: &Alert) {
        for r in &self.rules {
            if r.cfg.source.matches(&a.labels) {
                r.sources.write().insert(a.fingerprint(), a.clone());
            }
        }
    }

    /// The fingerprint of an alert that inhibits `labels` at `now`, if any.
    pub fn mutes(&self, labels: &Labels, now: Time) -> Option<u64> {
        let fp = fingerprint(labels);
        for r in &self.rules {
            if !r.cfg.target.matches(labels) {
                continue;
            }
            // An alert matching both sides must not inhibit itself or its twins.
            let two_sided = r.cfg.source.matches(labels);
            let sources = r.sources.read();
            let found = sources.values().find(|s| {
                !s.resolved_at(now)
                    && r.cfg
                        .equal
                        .iter()
                        .all(|n| s.labels.get_or_empty(n) == labels.get_or_empty(n))
                    && !(two_sided && r.cfg.target.matches(&s.labels))
            });
            if let Some(s) = found {
                let sfp = s.fingerprint();
                if sfp != fp || !two_sided {
                    return Some(sfp);
                }
            }
        }
        None
    }

    /// Forgets resolved source alerts.
    pub fn gc(&self, now: Time) {
        for r in &self.rules {
            r.sources.write().retain(|_, a| !a.resolved_at(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::{Matchers, parse_matchers};

    fn alert(pairs: &[(&str, &str)], now: Time) -> Alert {
        Alert {
            labels: Labels::from_pairs(pairs.iter().copied()),
            annotations: Labels::empty(),
            starts_at: now,
            ends_at: Some(now.add(std::time::Duration::from_secs(300))),
            generator_url: String::new(),
            updated_at: now,
            timeout: true,
        }
    }

    #[test]
    fn critical_inhibits_warning_on_same_cluster() {
        let now = Time::parse("2024-01-01T00:00:00Z").unwrap();
        let rule = InhibitRule {
            source: Matchers::new(parse_matchers("severity=critical").unwrap()),
            target: Matchers::new(parse_matchers("severity=warning").unwrap()),
            equal: vec!["cluster".into()],
        };
        let inh = Inhibitor::new(&[rule]);
        let src = alert(&[("severity", "critical"), ("cluster", "a")], now);
        inh.observe(&src);
        let same = Labels::from_pairs([("severity", "warning"), ("cluster", "a")]);
        let other = Labels::from_pairs([("severity", "warning"), ("cluster", "b")]);
        assert_eq!(inh.mutes(&same, now), Some(src.fingerprint()));
        assert_eq!(inh.mutes(&other, now), None);
        let later = now.add(std::time::Duration::from_secs(301));
        assert_eq!(
            inh.mutes(&same, later),
            None,
            "resolved sources do not inhibit"
        );
    }

    #[test]
    fn two_sided_rule_does_not_self_inhibit() {
        let now = Time::parse("2024-01-01T00:00:00Z").unwrap();
        let rule = InhibitRule {
            source: Matchers::new(parse_matchers("a=x").unwrap()),
            target: Matchers::new(parse_matchers("a=x").unwrap()),
            equal: vec![],
        };
        let inh = Inhibitor::new(&[rule]);
        let a = alert(&[("a", "x"), ("b", "1")], now);
        inh.observe(&a);
        assert_eq!(inh.mutes(&a.labels, now), None);
    }
}
