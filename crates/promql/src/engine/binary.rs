//! Binary operators: arithmetic, comparison (with and without `bool`), `atan2` and the set
//! operators, with vector matching (`on`/`ignoring`, `group_left`/`group_right`).

use std::collections::{HashMap, HashSet};

use model::Labels;
use model::labels::METRIC_NAME;

use super::{Builder, Ev, RSeries, Rng, StepWalker, Val};
use crate::ast::{BinOp, Binary, Cardinality, VectorMatching};
use crate::error::{Result, eval_err};

/// Applies `op` to two floats: the value and, for comparisons, whether the pair is kept (the
/// value of a comparison is its left side).
pub(crate) fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

/// The output value of a comparison or arithmetic pair, `None` when a filter drops it.
pub(super) fn combine(op: BinOp, return_bool: bool, l: f64, r: f64) -> Option<f64> {
    let (v, keep) = apply(op, l, r);
    if !op.is_comparison() {
        Some(v)
    } else if return_bool {
        Some(if keep { 1.0 } else { 0.0 })
    } else if keep {
        Some(v)
    } else {
        None
    }
}

pub(super) fn signature(l: &Labels, m: &VectorMatching) -> u64 {
    if m.on {
        l.hash_for_labels(&m.labels)
    } else {
        l.hash_without_labels(&m.labels)
    }
}

/// The labels a match group is identified by, for error messages.
pub(super) fn signature_labels(l: &Labels, m: &VectorMatching) -> Labels {
    let mut b = l.builder();
    if m.on {
        b.retain(|n, _| m.labels.iter().any(|x| x == n));
    } else {
        b.retain(|n, _| n != METRIC_NAME && !m.labels.iter().any(|x| x == n));
    }
    b.labels()
}

impl Ev<'_> {
    pub(crate) fn binary(&mut self, b: &Binary, r: Rng) -> Result<Val> {
        let lhs = self.eval(&b.lhs, r)?;
        let rhs = self.eval(&b.rhs, r)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(rv)) => Ok(Val::Scalar(
                l.iter()
                    .zip(&rv)
                    .map(|(&x, &y)| {
                        let (v, keep) = apply(b.op, x, y);
                        if b.op.is_comparison() {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(v), Val::Scalar(s)) => Ok(Val::Vector(vector_scalar(v, &s, false, b, r))),
            (Val::Scalar(s), Val::Vector(v)) => Ok(Val::Vector(vector_scalar(v, &s, true, b, r))),
            (Val::Vector(l), Val::Vector(rv)) => {
                let default = VectorMatching {
                    card: Cardinality::OneToOne,
                    on: false,
                    labels: vec![],
                    include: vec![],
                };
                let m = b.matching.as_ref().unwrap_or(&default);
                let out = if b.op.is_set() {
                    set_op(b.op, &l, &rv, m, r)?
                } else if b.fill_left.is_some() || b.fill_right.is_some() {
                    self.vector_vector_fill(b, &l, &rv, m, r)?
                } else {
                    self.vector_vector(b, &l, &rv, m, r)?
                };
                self.release(&l);
                self.release(&rv);
                self.budget.add(super::points_in(&out))?;
                Ok(Val::Vector(out))
            }
            _ => eval_err("binary expression must contain only scalar and instant vector types"),
        }
    }

    fn vector_vector(
        &mut self,
        b: &Binary,
        lhs: &[RSeries],
        rhs: &[RSeries],
        m: &VectorMatching,
        r: Rng,
    ) -> Result<Vec<RSeries>> {
        let swap = m.card == Cardinality::OneToMany;
        let (many, one) = if swap { (rhs, lhs) } else { (lhs, rhs) };
        let many_sig: Vec<u64> = many.iter().map(|s| signature(&s.labels, m)).collect();
        let one_sig: Vec<u64> = one.iter().map(|s| signature(&s.labels, m)).collect();
        let mut result_labels: HashMap<(usize, usize), Labels> = HashMap::new();
        let mut out = Builder::new();
        let (mut wm, mut wo) = (StepWalker::new(many), StepWalker::new(one));
        let (mut vm, mut vo) = (Vec::new(), Vec::new());
        let mut one_map: HashMap<u64, (usize, f64)> = HashMap::new();
        let mut matched: HashSet<u64> = HashSet::new();
        let mut produced: HashSet<Labels> = HashSet::new();
        let name_from_one = m.include.iter().any(|n| n == METRIC_NAME);
        for k in 0..r.len() {
            self.tick()?;
            let t = r.ts(k);
            wm.step(t, &mut vm);
            wo.step(t, &mut vo);
            if vm.is_empty() || vo.is_empty() {
                continue;
            }
            one_map.clear();
            for &(i, v) in &vo {
                if let Some(&(j, _)) = one_map.get(&one_sig[i]) {
                    let mut pair = [one[j].labels.clone(), one[i].labels.clone()];
                    pair.sort();
                    return eval_err(format!(
                        "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        signature_labels(&one[i].labels, m),
                        if swap { "left" } else { "right" },
                        pair[0],
                        pair[1]
                    ));
                }
                one_map.insert(one_sig[i], (i, v));
            }
            matched.clear();
            produced.clear();
            for &(i, v) in &vm {
                let Some(&(j, ov)) = one_map.get(&many_sig[i]) else {
                    continue;
                };
                if m.card == Cardinality::OneToOne && !matched.insert(many_sig[i]) {
                    return eval_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    );
                }
                let (lv, rv) = if swap { (ov, v) } else { (v, ov) };
                let Some(val) = combine(b.op, b.return_bool, lv, rv) else {
                    continue;
                };
                let labels = result_labels
                    .entry((i, j))
                    .or_insert_with(|| result_metric(&many[i].labels, &one[j].labels, m))
                    .clone();
                if m.card != Cardinality::OneToOne && !produced.insert(labels.clone()) {
                    return eval_err(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    );
                }
                // `group_left(__name__)` takes the name from the "one" side after the operator
                // dropped the other one (Prometheus 2.42, and 3.x without delayed name
                // removal), so that name stays unless the "one" side's own is to be dropped.
                let drop = if name_from_one {
                    one[j].drop_name
                } else {
                    !b.op.is_comparison() || b.return_bool || many[i].drop_name
                };
                out.push(&labels, drop, t, val)?;
            }
        }
        Ok(out.out)
    }
}

pub(super) fn result_metric(many: &Labels, one: &Labels, m: &VectorMatching) -> Labels {
    let mut b = many.builder();
    if m.card == Cardinality::OneToOne {
        if m.on {
            b.retain(|n, _| m.labels.iter().any(|x| x == n));
        } else {
            b.retain(|n, _| !m.labels.iter().any(|x| x == n));
        }
    }
    for name in &m.include {
        match one.get(name) {
            Some(v) => b.set(name.clone(), v),
            None => b.del(name),
        };
    }
    b.labels()
}

fn vector_scalar(
    mut v: Vec<RSeries>,
    s: &[f64],
    scalar_left: bool,
    b: &Binary,
    r: Rng,
) -> Vec<RSeries> {
    for series in &mut v {
        series.points.retain_mut(|p| {
            let sv = s[r.index(p.0)];
            let (l, rv) = if scalar_left { (sv, p.1) } else { (p.1, sv) };
            match combine(b.op, b.return_bool, l, rv) {
                // compat: a comparison keeps the vector's value even when the scalar is on the left.
                Some(_) if b.op.is_comparison() && !b.return_bool => true,
                Some(x) => {
                    p.1 = x;
                    true
                }
                None => false,
            }
        });
        if !b.op.is_comparison() || b.return_bool {
            series.drop_name = true;
        }
    }
    v.retain(|s| !s.points.is_empty());
    v
}

fn set_op(
    op: BinOp,
    lhs: &[RSeries],
    rhs: &[RSeries],
    m: &VectorMatching,
    r: Rng,
) -> Result<Vec<RSeries>> {
    let lsig: Vec<u64> = lhs.iter().map(|s| signature(&s.labels, m)).collect();
    let rsig: Vec<u64> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = Builder::new();
    let (mut wl, mut wr) = (StepWalker::new(lhs), StepWalker::new(rhs));
    let (mut vl, mut vr) = (Vec::new(), Vec::new());
    let mut sigs: HashSet<u64> = HashSet::new();
    for k in 0..r.len() {
        let t = r.ts(k);
        wl.step(t, &mut vl);
        wr.step(t, &mut vr);
        sigs.clear();
        match op {
            BinOp::And | BinOp::Unless => {
                sigs.extend(vr.iter().map(|&(i, _)| rsig[i]));
                let want = op == BinOp::And;
                for &(i, v) in &vl {
                    if sigs.contains(&lsig[i]) == want {
                        out.push(&lhs[i].labels, lhs[i].drop_name, t, v)?;
                    }
                }
            }
            _ => {
                for &(i, v) in &vl {
                    sigs.insert(lsig[i]);
                    out.push(&lhs[i].labels, lhs[i].drop_name, t, v)?;
                }
                for &(i, v) in &vr {
                    if !sigs.contains(&rsig[i]) {
                        out.push(&rhs[i].labels, rhs[i].drop_name, t, v)?;
                    }
                }
            }
        }
    }
    Ok(out.out)
}
