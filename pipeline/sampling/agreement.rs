//! Agreement with people: the automatic flags of the sampled calls + the human evaluations of
//! those calls -> per rule, how often QA confirms the flag (precision), weighted by the design.
//!
//! A flag is a rule that fired on a call: a phrase rule (`forbidden_phrase`,
//! `required_phrase_missing`) or a scorecard threshold (`scorecard.*`), by its `rule_id`. An
//! evaluator marks each flag of a call confirmed, rejected or not applicable. Only calls the
//! design drew count ([`Selected::in_design`]), each weighted by 1 / its inclusion probability,
//! so the estimate is the month's precision although risky calls are oversampled: the same
//! Hájek estimate and Wilson interval on the effective sample size as the fail rate
//! ([`super::weighted_rate`]). "Not applicable" verdicts and flags left blank stay out. A rule
//! an evaluator confirmed on a call where it did not fire is counted as `missed` (unweighted:
//! it says the rule misses things, not how often).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{weighted_rate, Estimate, Selected};

/// An evaluator's verdict on one automatic flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Confirmed,
    Rejected,
    NotApplicable,
}

impl Verdict {
    pub fn parse(text: &str) -> Option<Verdict> {
        match text.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
            "confirmed" | "confirm" | "yes" | "y" | "1" | "true" => Some(Verdict::Confirmed),
            "rejected" | "reject" | "no" | "n" | "0" | "false" => Some(Verdict::Rejected),
            "not_applicable" | "n/a" | "na" => Some(Verdict::NotApplicable),
            _ => None,
        }
    }
}

/// One human evaluation of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub call_id: String,
    pub evaluator: String,
    /// Microseconds since the epoch (UTC), when known.
    pub evaluated_at: Option<i64>,
    pub passed: bool,
    /// Verdicts by rule_id.
    pub verdicts: BTreeMap<String, Verdict>,
}

/// How far QA agrees with one rule's flags this month.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAgreement {
    pub rule_id: String,
    /// Flags of the rule on evaluated calls of the design, with a confirmed or rejected verdict.
    pub evaluated: usize,
    pub confirmed: usize,
    pub rejected: usize,
    /// Weighted share confirmed, with its 95% interval.
    pub precision: Option<Estimate>,
    /// Calls where an evaluator confirmed the rule but it had not fired.
    pub missed: usize,
}

/// The latest evaluation of each call (by `evaluated_at`, later files winning ties).
pub fn latest(evaluations: &[Evaluation]) -> HashMap<&str, &Evaluation> {
    let mut by_call: HashMap<&str, &Evaluation> = HashMap::new();
    for e in evaluations {
        let newer = by_call.get(e.call_id.as_str()).is_none_or(|old| e.evaluated_at >= old.evaluated_at);
        if newer {
            by_call.insert(&e.call_id, e);
        }
    }
    by_call
}

/// Agreement per rule, the rules QA disagrees with most (lowest precision) first; rules
/// without any evaluated flag last.
pub fn rule_agreement(
    flags: &HashMap<String, BTreeSet<String>>,
    evaluations: &HashMap<&str, &Evaluation>,
    samples: &[Selected],
) -> Vec<RuleAgreement> {
    let mut observations: BTreeMap<&str, Vec<(bool, f64)>> = BTreeMap::new();
    let mut missed: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.in_design()) {
        let Some(evaluation) = evaluations.get(s.call_id.as_str()) else { continue };
        let fired = flags.get(&s.call_id);
        for rule in fired.into_iter().flatten() {
            let entry = observations.entry(rule.as_str()).or_default();
            match evaluation.verdicts.get(rule) {
                Some(Verdict::Confirmed) => entry.push((true, s.inclusion_prob)),
                Some(Verdict::Rejected) => entry.push((false, s.inclusion_prob)),
                _ => {}
            }
        }
        for (rule, verdict) in &evaluation.verdicts {
            if *verdict == Verdict::Confirmed && !fired.is_some_and(|f| f.contains(rule)) {
                *missed.entry(rule.as_str()).or_default() += 1;
                observations.entry(rule.as_str()).or_default();
            }
        }
    }
    let mut rows: Vec<RuleAgreement> = observations
        .into_iter()
        .map(|(rule, obs)| RuleAgreement {
            rule_id: rule.to_string(),
            evaluated: obs.len(),
            confirmed: obs.iter().filter(|o| o.0).count(),
            rejected: obs.iter().filter(|o| !o.0).count(),
            precision: weighted_rate(&obs),
            missed: missed.get(rule).copied().unwrap_or(0),
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &RuleAgreement| r.precision.map_or(f64::INFINITY, |p| p.value);
        key(a).total_cmp(&key(b)).then(a.rule_id.cmp(&b.rule_id))
    });
    rows
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::sampling::{select, CallFlags, SampleSettings};

    /// A month where rule "r" fires on 30% of calls. Risky calls (flagged by something else,
    /// 10% of calls) are sampled at 0.5, the rest at 0.05. QA confirms "r" on risky calls with
    /// probability 0.9 and elsewhere with 0.5: the month's true precision is their mix over
    /// the calls where "r" fired, which an unweighted share of the sample overstates.
    fn synthetic_month(seed: u64) -> (f64, Option<Estimate>, f64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut calls = Vec::new();
        let mut flags: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut confirm_prob: HashMap<String, f64> = HashMap::new();
        for k in 0..4000 {
            let id = format!("c{k}");
            let risky = rng.random_bool(0.1);
            if rng.random_bool(0.3) {
                flags.entry(id.clone()).or_default().insert("r".into());
                confirm_prob.insert(id.clone(), if risky { 0.9 } else { 0.5 });
            }
            calls.push(CallFlags {
                call_id: id,
                agent_id: format!("a{}", k % 20),
                reasons: if risky { vec!["long_silence"] } else { vec![] },
            });
        }
        let truth = confirm_prob.values().sum::<f64>() / confirm_prob.len() as f64;
        let samples = select(&calls, &HashSet::new(), &SampleSettings { seed, ..Default::default() });
        let evaluations: Vec<Evaluation> = samples
            .iter()
            .map(|s| {
                let mut verdicts = BTreeMap::new();
                if let Some(p) = confirm_prob.get(&s.call_id) {
                    let confirmed = rng.random_bool(*p);
                    verdicts.insert("r".into(), if confirmed { Verdict::Confirmed } else { Verdict::Rejected });
                }
                Evaluation {
                    call_id: s.call_id.clone(),
                    evaluator: "qa".into(),
                    evaluated_at: None,
                    passed: true,
                    verdicts,
                }
            })
            .collect();
        let rows = rule_agreement(&flags, &latest(&evaluations), &samples);
        let unweighted = rows[0].confirmed as f64 / rows[0].evaluated as f64;
        (truth, rows[0].precision, unweighted)
    }

    #[test]
    fn weighted_precision_recovers_the_true_precision_across_seeds() {
        let mut covered = 0;
        let mut errors = Vec::new();
        for seed in 0..40 {
            let (truth, estimate, unweighted) = synthetic_month(seed);
            let e = estimate.expect("flags were evaluated");
            covered += usize::from(e.low <= truth && truth <= e.high);
            errors.push(e.value - truth);
            // Oversampled risky calls confirm more often: the plain share is biased upwards.
            assert!(unweighted > truth + 0.03, "seed {seed}: unweighted {unweighted:.3} vs truth {truth:.3}");
        }
        let bias = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().map(|e| e.abs()).fold(0.0, f64::max);
        eprintln!("measured over 40 months: interval covered {covered}, mean error {bias:.4}, worst {worst:.3}");
        // 95% intervals: 38 of 40 expected; binomial noise allows a few fewer.
        assert!(covered >= 34, "interval covered the truth in {covered} of 40 months");
        assert!(bias.abs() < 0.02, "mean error {bias:.3}");
        assert!(worst < 0.18, "worst error {worst:.3}");
    }

    #[test]
    fn not_applicable_blank_and_top_ups_stay_out_and_misses_are_counted() {
        let sample = |id: &str, reason: &str| Selected {
            call_id: id.into(),
            agent_id: "a".into(),
            stratum: "risk",
            inclusion_prob: 0.5,
            reason: reason.into(),
        };
        let samples = [sample("c1", "risk: sampled"), sample("c2", "risk: sampled"), sample("c3", "top-up")];
        let flags: HashMap<String, BTreeSet<String>> = [
            ("c1".to_string(), BTreeSet::from(["r".to_string(), "s".to_string()])),
            ("c2".to_string(), BTreeSet::from(["r".to_string()])),
            ("c3".to_string(), BTreeSet::from(["r".to_string()])),
        ]
        .into();
        let evaluation = |id: &str, at: i64, verdicts: &[(&str, Verdict)]| Evaluation {
            call_id: id.into(),
            evaluator: "qa".into(),
            evaluated_at: Some(at),
            passed: false,
            verdicts: verdicts.iter().map(|(r, v)| (r.to_string(), *v)).collect(),
        };
        let evaluations = [
            evaluation("c1", 1, &[("r", Verdict::Confirmed), ("s", Verdict::NotApplicable), ("t", Verdict::Confirmed)]),
            evaluation("c2", 1, &[("r", Verdict::Confirmed)]),
            // A later evaluation of c2 replaces the first.
            evaluation("c2", 2, &[("r", Verdict::Rejected)]),
            evaluation("c3", 1, &[("r", Verdict::Rejected)]),
        ];
        let rows = rule_agreement(&flags, &latest(&evaluations), &samples);
        let row = |id: &str| rows.iter().find(|r| r.rule_id == id).unwrap();
        assert_eq!((row("r").evaluated, row("r").confirmed, row("r").rejected), (2, 1, 1));
        assert_eq!(row("r").precision.unwrap().value, 0.5);
        assert_eq!((row("s").evaluated, row("s").precision), (0, None));
        assert_eq!((row("t").evaluated, row("t").missed), (0, 1));
        assert_eq!(rows[0].rule_id, "r", "the rule with the lowest precision comes first");
        assert_eq!(Verdict::parse(" Not applicable"), Some(Verdict::NotApplicable));
        assert_eq!(Verdict::parse("maybe"), None);
    }
}
