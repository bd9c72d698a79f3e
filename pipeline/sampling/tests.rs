//! Sampling on synthetic months with known flag rates.

use super::*;
use rand::{Rng, SeedableRng};

/// `agents` agents with `calls_per_agent` calls each; a call is flagged with probability
/// `flag_rate`; each call has a hidden "fails human review" outcome, much likelier when
/// flagged.
fn month(agents: usize, calls_per_agent: usize, flag_rate: f64, seed: u64) -> (Vec<CallFlags>, HashMap<String, bool>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut calls = Vec::new();
    let mut fails = HashMap::new();
    for a in 0..agents {
        let n = if a % 5 == 0 { 3 } else { calls_per_agent }; // some agents with few calls
        for k in 0..n {
            let flagged = rng.random_bool(flag_rate);
            let id = format!("a{a}-c{k}");
            fails.insert(id.clone(), rng.random_bool(if flagged { 0.6 } else { 0.05 }));
            calls.push(CallFlags {
                call_id: id,
                agent_id: format!("agent{a}"),
                reasons: if flagged { vec!["forbidden_phrase"] } else { vec![] },
            });
        }
    }
    (calls, fails)
}

#[test]
fn the_rate_and_the_per_agent_minimum_hold() {
    let (calls, _) = month(40, 120, 0.1, 1);
    let s = SampleSettings::default();
    let selected = select(&calls, &HashSet::new(), &s);
    assert!(selected.len() as f64 >= s.rate * calls.len() as f64, "{} of {}", selected.len(), calls.len());
    let per_agent = by_agent(&selected);
    for a in 0..40 {
        let have = per_agent.get(format!("agent{a}").as_str()).map_or(0, Vec::len);
        let total = if a % 5 == 0 { 3 } else { 120 };
        assert!(have >= s.min_per_agent.min(total), "agent{a}: {have}");
    }
    // Flagged calls are oversampled: about half of them, against 5% of the others.
    let flagged = calls.iter().filter(|c| !c.reasons.is_empty()).count() as f64;
    let risk = selected.iter().filter(|c| c.stratum == "risk").count() as f64;
    assert!(risk / flagged > 0.4, "risk share {}", risk / flagged);
    assert!(selected.iter().all(|c| c.inclusion_prob > 0.0 && c.inclusion_prob <= 1.0));
}

#[test]
fn deterministic_and_independent_of_input_order() {
    let (mut calls, _) = month(10, 50, 0.2, 2);
    let s = SampleSettings { seed: 7, ..Default::default() };
    let ids = |v: Vec<Selected>| -> Vec<String> {
        let mut ids: Vec<String> = v.into_iter().map(|c| c.call_id).collect();
        ids.sort();
        ids
    };
    let first = ids(select(&calls, &HashSet::new(), &s));
    assert_eq!(first, ids(select(&calls, &HashSet::new(), &s)));
    calls.reverse();
    assert_eq!(first, ids(select(&calls, &HashSet::new(), &s)));
    let other_seed = ids(select(&calls, &HashSet::new(), &SampleSettings { seed: 8, ..s }));
    assert_ne!(first, other_seed);
}

#[test]
fn calls_already_selected_stay_selected_when_more_arrive() {
    let (calls, _) = month(10, 60, 0.1, 3);
    let s = SampleSettings::default();
    let early: Vec<CallFlags> = calls.iter().filter(|c| !c.call_id.ends_with('7')).cloned().collect();
    let before: HashSet<String> = select(&early, &HashSet::new(), &s).into_iter().map(|c| c.call_id).collect();
    let after: HashSet<String> = select(&calls, &before, &s).into_iter().map(|c| c.call_id).collect();
    assert!(before.is_subset(&after), "{} dropped", before.difference(&after).count());
}

#[test]
fn weighted_estimates_recover_the_true_rate_within_their_interval() {
    // Across seeds, the 95% interval of the month's fail rate covers the truth nearly always,
    // although flagged calls are sampled ten times as often as the rest.
    let mut covered = 0;
    let runs = 40;
    for seed in 0..runs {
        let (calls, fails) = month(30, 200, 0.1, 100 + seed);
        let truth = fails.values().filter(|&&f| f).count() as f64 / fails.len() as f64;
        let selected = select(&calls, &HashSet::new(), &SampleSettings { seed, ..Default::default() });
        let obs: Vec<(bool, f64)> =
            selected.iter().filter(|c| c.in_design()).map(|c| (fails[&c.call_id], c.inclusion_prob)).collect();
        let e = weighted_rate(&obs).unwrap();
        let unweighted = obs.iter().filter(|o| o.0).count() as f64 / obs.len() as f64;
        assert!(unweighted > truth * 1.5, "the naive rate is biased by oversampling ({unweighted} vs {truth})");
        if e.low <= truth && truth <= e.high {
            covered += 1;
        }
    }
    assert!(covered as f64 / runs as f64 >= 0.85, "covered {covered} of {runs}");
}

#[test]
fn top_ups_are_reviewed_but_left_out_of_the_design() {
    // A minimum of 20 of an agent's 40 calls gives π = 0.5: chance leaves some agents short.
    let (calls, _) = month(10, 40, 0.1, 5);
    let s = SampleSettings { min_per_agent: 20, ..Default::default() };
    let selected = select(&calls, &HashSet::new(), &s);
    let top_ups: Vec<&Selected> = selected.iter().filter(|c| c.reason.ends_with("top-up")).collect();
    assert!(!top_ups.is_empty());
    assert!(top_ups.iter().all(|c| !c.in_design()));
    // Everything else was drawn by its own probability: u < π.
    for c in selected.iter().filter(|c| c.in_design()) {
        assert!(prn(s.seed, &c.call_id) < c.inclusion_prob, "{c:?}");
    }
    // A call kept from an earlier run that the design would not draw now is not in it either.
    let undrawn = calls.iter().find(|c| !selected.iter().any(|s| s.call_id == c.call_id)).unwrap();
    let previous = HashSet::from([undrawn.call_id.clone()]);
    let again = select(&calls, &previous, &s);
    let kept = again.iter().find(|c| c.call_id == undrawn.call_id).unwrap();
    assert!(kept.reason.ends_with("kept from an earlier run") && !kept.in_design());
}

#[test]
fn weighted_rate_basics() {
    assert_eq!(weighted_rate(&[]), None);
    let e = weighted_rate(&[(true, 0.5), (false, 0.05)]).unwrap();
    // weights 2 and 20: 2/22
    assert!((e.value - 2.0 / 22.0).abs() < 1e-12);
    assert!(e.low < e.value && e.value < e.high);
    let p = prn(1, "x");
    assert!((0.0..1.0).contains(&p) && p == prn(1, "x") && p != prn(2, "x"));
}
