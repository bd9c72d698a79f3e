//! Sampling for human evaluation: a month of scored calls -> the calls humans listen to,
//! each with the probability it had of being chosen.
//!
//! Design (Poisson sampling with permanent random numbers):
//! - every call gets a number `u` in [0, 1) from a hash of (seed, call_id): deterministic and
//!   independent of input order;
//! - its inclusion probability `π` is `risk_inclusion` when the pipeline flagged it (risk
//!   stratum) and `rate` otherwise (random stratum), raised for agents with few calls so
//!   each expects `min_per_agent`; it is selected when `u < π`;
//! - calls already selected in an earlier run of the month stay selected, so re-running after
//!   more calls arrived only adds;
//! - if chance leaves an agent under `min_per_agent` or the month under `rate`, the calls
//!   with the smallest `u / π` are added (reason `top-up`).
//!
//! Because `π` is known per call, Horvitz-Thompson / Hájek weighted estimates from the human
//! verdicts are unbiased for the whole month, however hard the risk stratum is oversampled
//! ([`weighted_rate`]). That holds for the calls the design drew (`u < π`) only: a top-up,
//! or a call kept from an earlier run whose `π` has since fallen below its `u`, was chosen by
//! another rule with no known probability. They are reviewed and coached like the others
//! but left out of the weighted estimates ([`Selected::in_design`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the sampler knows of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFlags {
    pub call_id: String,
    pub agent_id: String,
    /// Why the call is risky (empty = unflagged).
    pub reasons: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    pub call_id: String,
    pub agent_id: String,
    pub stratum: &'static str,
    pub inclusion_prob: f64,
    pub reason: String,
}

impl Selected {
    /// Drawn by the design (`u < π`), so `inclusion_prob` is the probability it was chosen
    /// with and its verdict belongs in weighted estimates; false for top-ups and for calls
    /// kept from an earlier run that the current design would not draw.
    pub fn in_design(&self) -> bool {
        self.reason.ends_with(SAMPLED)
    }
}

/// How a call was chosen, at the end of `Selected::reason`.
const SAMPLED: &str = "sampled";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSettings {
    /// Share of the month's calls to select at least. Default 0.05.
    pub rate: f64,
    /// Calls every agent gets at least (or all of theirs). Default 8.
    pub min_per_agent: usize,
    /// Inclusion probability of flagged calls. Default 0.5.
    pub risk_inclusion: f64,
    pub seed: u64,
}

impl Default for SampleSettings {
    fn default() -> Self {
        SampleSettings { rate: 0.05, min_per_agent: 8, risk_inclusion: 0.5, seed: 0 }
    }
}

/// The permanent random number of a call: uniform in [0, 1).
pub fn prn(seed: u64, call_id: &str) -> f64 {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(call_id.as_bytes()).finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap()) as f64 / (u64::MAX as f64 + 1.0)
}

/// Select the calls of a month. `previous` holds call_ids selected by an earlier run.
pub fn select(calls: &[CallFlags], previous: &HashSet<String>, s: &SampleSettings) -> Vec<Selected> {
    let mut per_agent: HashMap<&str, usize> = HashMap::new();
    for c in calls {
        *per_agent.entry(c.agent_id.as_str()).or_default() += 1;
    }
    let design: Vec<(f64, f64)> = calls
        .iter()
        .map(|c| {
            let stratum_prob = if c.reasons.is_empty() { s.rate } else { s.risk_inclusion.max(s.rate) };
            let agent_prob = s.min_per_agent as f64 / per_agent[c.agent_id.as_str()] as f64;
            (prn(s.seed, &c.call_id), stratum_prob.max(agent_prob).min(1.0))
        })
        .collect();
    let mut chosen: Vec<Option<&'static str>> = design
        .iter()
        .zip(calls)
        .map(|(&(u, p), c)| {
            if u < p {
                Some(SAMPLED)
            } else if previous.contains(&c.call_id) {
                Some("kept from an earlier run")
            } else {
                None
            }
        })
        .collect();
    // Top-ups: per agent first, then the month, smallest u / π first.
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by(|&a, &b| {
        (design[a].0 / design[a].1)
            .total_cmp(&(design[b].0 / design[b].1))
            .then(calls[a].call_id.cmp(&calls[b].call_id))
    });
    let mut have: HashMap<&str, usize> = HashMap::new();
    for (i, c) in calls.iter().enumerate() {
        if chosen[i].is_some() {
            *have.entry(c.agent_id.as_str()).or_default() += 1;
        }
    }
    for &i in &order {
        let agent = calls[i].agent_id.as_str();
        let need = s.min_per_agent.min(per_agent[agent]);
        if chosen[i].is_none() && have.get(agent).copied().unwrap_or(0) < need {
            chosen[i] = Some("top-up");
            *have.entry(agent).or_default() += 1;
        }
    }
    let target = (s.rate * calls.len() as f64).ceil() as usize;
    let mut total = chosen.iter().filter(|c| c.is_some()).count();
    for &i in &order {
        if total >= target {
            break;
        }
        if chosen[i].is_none() {
            chosen[i] = Some("top-up");
            total += 1;
        }
    }
    calls
        .iter()
        .zip(design)
        .zip(chosen)
        .filter_map(|((c, (_, p)), how)| {
            let how = how?;
            let stratum = if c.reasons.is_empty() { "random" } else { "risk" };
            let reason =
                if c.reasons.is_empty() { how.to_string() } else { format!("{}; {how}", c.reasons.join(", ")) };
            Some(Selected {
                call_id: c.call_id.clone(),
                agent_id: c.agent_id.clone(),
                stratum,
                inclusion_prob: p,
                reason,
            })
        })
        .collect()
}

/// A weighted proportion with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

/// Hájek estimate of a proportion from sampled (outcome, inclusion probability) pairs, with
/// a 95% Wilson interval on the Kish effective sample size (so strongly unequal weights widen
/// it honestly). `None` without observations.
pub fn weighted_rate(observations: &[(bool, f64)]) -> Option<Estimate> {
    if observations.is_empty() {
        return None;
    }
    let weights: Vec<f64> = observations.iter().map(|(_, p)| 1.0 / p).collect();
    let total: f64 = weights.iter().sum();
    let value = observations.iter().zip(&weights).filter(|((hit, _), _)| *hit).map(|(_, w)| w).sum::<f64>() / total;
    let effective_n = total * total / weights.iter().map(|w| w * w).sum::<f64>();
    let z = 1.96f64;
    let denom = 1.0 + z * z / effective_n;
    let centre = (value + z * z / (2.0 * effective_n)) / denom;
    let half = z * ((value * (1.0 - value) / effective_n) + z * z / (4.0 * effective_n * effective_n)).sqrt() / denom;
    Some(Estimate { value, low: (centre - half).max(0.0), high: (centre + half).min(1.0), n: observations.len() })
}

/// Group selected calls by agent (for per-agent estimates).
pub fn by_agent(selected: &[Selected]) -> BTreeMap<&str, Vec<&Selected>> {
    let mut out: BTreeMap<&str, Vec<&Selected>> = BTreeMap::new();
    for s in selected {
        out.entry(s.agent_id.as_str()).or_default().push(s);
    }
    out
}

pub mod agreement;

#[cfg(test)]
mod tests;
