//! The monthly review, at the edge: `calls` / `events` / `utterances` tables and human
//! evaluations -> `samples`, `agent_month`, `evaluations`, `rule_agreement` and a
//! self-contained HTML report ([`html`]).
//!
//! `sample` flags risky calls from the scored `calls` of a month and draws the human-review
//! sample ([`crate::sampling`]); `report` summarises each agent (automated violation rates,
//! holds, raised voices, mean score, and, where human evaluations exist ([`evaluations`]), the
//! weighted fail-rate estimate with its 95% interval) and each rule's agreement with the
//! evaluators ([`crate::sampling::agreement`]).

pub mod evaluations;
mod html;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, PrimitiveArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{ArrowPrimitiveType, Float64Type, Int32Type};

use crate::rules::scorecard::ScorecardSettings;
use crate::sampling::agreement::{self, RuleAgreement};
use crate::sampling::{self, CallFlags, SampleSettings, Selected};
use crate::sinks::parquet::{self as pq, SinkError};
use crate::sinks::schema;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("month {0:?} is not YYYY-MM")]
    Month(String),
    #[error("no calls for {month} under {}; run `callqa run` first", out.display())]
    NoCalls { month: String, out: PathBuf },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("evaluations {}: {reason}", path.display())]
    Evaluations { path: PathBuf, reason: String },
    #[error("writing {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
}

/// What the review needs of one call.
#[derive(Debug, Clone)]
pub struct CallRow {
    pub call_id: String,
    pub agent_id: String,
    pub call_date: String,
    pub forbidden_hits: Option<i32>,
    pub required_missing: Option<i32>,
    pub silence_max_s: f64,
    pub interruptions_by_agent: Option<i32>,
    pub hold_count: i32,
    pub hold_max_s: f64,
    pub qa_score: Option<f64>,
    pub source_path: String,
}

impl CallRow {
    fn long_silence(&self, s: &ScorecardSettings) -> bool {
        self.silence_max_s >= s.long_silence_s
    }

    fn too_many_agent_interruptions(&self, s: &ScorecardSettings) -> bool {
        self.interruptions_by_agent.unwrap_or(0) > s.max_agent_interruptions as i32
    }

    /// What makes the call a risk for review, by the scorecard's thresholds.
    pub fn reasons(&self, s: &ScorecardSettings) -> Vec<&'static str> {
        let mut r = Vec::new();
        if self.forbidden_hits.unwrap_or(0) > 0 {
            r.push("forbidden_phrase");
        }
        if self.required_missing.unwrap_or(0) > 0 {
            r.push("required_phrase_missing");
        }
        if self.long_silence(s) {
            r.push("long_silence");
        }
        if self.too_many_agent_interruptions(s) {
            r.push("agent_interruptions");
        }
        if self.hold_max_s >= s.long_hold_s {
            r.push("long_hold");
        }
        if self.hold_count > s.max_holds as i32 {
            r.push("many_holds");
        }
        if self.qa_score.is_some_and(|score| score < s.review_below_score) {
            r.push("low_qa_score");
        }
        r
    }
}

fn check_month(month: &str) -> Result<(), ReviewError> {
    let ok = month.len() == 7 && chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_ok();
    if ok {
        Ok(())
    } else {
        Err(ReviewError::Month(month.into()))
    }
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .map(|a| (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

/// A numeric column as options (all `None` when the table predates it).
fn numbers<T: ArrowPrimitiveType>(batch: &RecordBatch, name: &str) -> Vec<Option<T::Native>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<PrimitiveArray<T>>())
        .map(|a| (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    numbers::<Float64Type>(batch, name)
}

fn i32s(batch: &RecordBatch, name: &str) -> Vec<Option<i32>> {
    numbers::<Int32Type>(batch, name)
}

/// The month's calls; the latest row wins when a call was processed more than once.
pub fn month_calls(out: &Path, month: &str) -> Result<Vec<CallRow>, ReviewError> {
    check_month(month)?;
    let mut by_id: BTreeMap<String, CallRow> = BTreeMap::new();
    for (date, b) in pq::read_partitions(out, "calls", &|date| date.starts_with(month))? {
        let (ids, agents) = (strings(&b, "call_id"), strings(&b, "agent_id"));
        let (forbidden, required, interruptions) =
            (i32s(&b, "forbidden_hits"), i32s(&b, "required_missing"), i32s(&b, "interruptions_by_agent"));
        let (silence, score) = (f64s(&b, "silence_max_s"), f64s(&b, "qa_score"));
        let (holds, hold_max, paths) = (i32s(&b, "hold_count"), f64s(&b, "hold_max_s"), strings(&b, "source_path"));
        for i in 0..b.num_rows() {
            let call_id = ids[i].clone().unwrap_or_default();
            by_id.insert(
                call_id.clone(),
                CallRow {
                    call_id,
                    agent_id: agents[i].clone().unwrap_or_else(|| "(unknown)".into()),
                    call_date: date.clone(),
                    forbidden_hits: forbidden[i],
                    required_missing: required[i],
                    silence_max_s: silence[i].unwrap_or(0.0),
                    interruptions_by_agent: interruptions[i],
                    hold_count: holds[i].unwrap_or(0),
                    hold_max_s: hold_max[i].unwrap_or(0.0),
                    qa_score: score[i],
                    source_path: paths[i].clone().unwrap_or_default(),
                },
            );
        }
    }
    if by_id.is_empty() {
        return Err(ReviewError::NoCalls { month: month.into(), out: out.to_path_buf() });
    }
    Ok(by_id.into_values().collect())
}

fn samples_path(out: &Path, month: &str) -> PathBuf {
    out.join("samples").join(format!("month={month}")).join("samples.parquet")
}

/// Previously written sample of a month.
pub fn read_samples(out: &Path, month: &str) -> Result<Vec<Selected>, ReviewError> {
    let mut found = Vec::new();
    for (_, b) in pq::read_partitions(out, "samples", &|m| m == month)? {
        let (ids, agents, strata, reasons) =
            (strings(&b, "call_id"), strings(&b, "agent_id"), strings(&b, "stratum"), strings(&b, "reason"));
        let probs = f64s(&b, "inclusion_prob");
        for i in 0..b.num_rows() {
            found.push(Selected {
                call_id: ids[i].clone().unwrap_or_default(),
                agent_id: agents[i].clone().unwrap_or_default(),
                stratum: if strata[i].as_deref() == Some("risk") { "risk" } else { "random" },
                inclusion_prob: probs[i].unwrap_or(1.0),
                reason: reasons[i].clone().unwrap_or_default(),
            });
        }
    }
    Ok(found)
}

/// Draw (or extend) the month's sample and write `OUT/samples/month=YYYY-MM/samples.parquet`.
pub fn sample(
    out: &Path,
    month: &str,
    settings: &SampleSettings,
    scorecard: &ScorecardSettings,
) -> Result<(Vec<Selected>, usize), ReviewError> {
    let calls = month_calls(out, month)?;
    let flags: Vec<CallFlags> = calls
        .iter()
        .map(|c| CallFlags { call_id: c.call_id.clone(), agent_id: c.agent_id.clone(), reasons: c.reasons(scorecard) })
        .collect();
    let previous: HashSet<String> = read_samples(out, month)?.into_iter().map(|s| s.call_id).collect();
    let selected = sampling::select(&flags, &previous, settings);
    let schema = schema::samples().schema;
    let n = selected.len();
    let now = chrono::Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.call_id.as_str()))),
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.agent_id.as_str()))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(month, n))),
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.stratum))),
        Arc::new(Float64Array::from_iter_values(selected.iter().map(|s| s.inclusion_prob))),
        Arc::new(StringArray::from_iter_values(selected.iter().map(|s| s.reason.as_str()))),
        Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(settings.seed as i64, n))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(now, n)).with_timezone("UTC")),
    ];
    let batch = pq::without_column(pq::batch("samples", schema, columns)?, "month");
    pq::write_file(&samples_path(out, month), &batch)?;
    Ok((selected, calls.len()))
}

/// One agent's month (the `ALL` row covers everyone).
#[derive(Debug, Clone)]
pub struct AgentMonth {
    pub agent_id: String,
    pub calls: usize,
    pub sampled: usize,
    pub forbidden_rate: f64,
    pub required_missing_rate: f64,
    pub long_silence_rate: f64,
    pub agent_interruption_rate: f64,
    pub holds_per_call: f64,
    pub long_hold_rate: f64,
    pub agent_raised_voice_rate: f64,
    pub customer_raised_voice_rate: f64,
    pub mean_qa_score: Option<f64>,
    pub evaluated: usize,
    pub fail_rate: Option<sampling::Estimate>,
}

fn summarise(
    agent_id: &str,
    calls: &[&CallRow],
    sampled: &[&Selected],
    verdicts: &HashMap<&str, bool>,
    month_events: &MonthEvents,
    scorecard: &ScorecardSettings,
) -> AgentMonth {
    let n = calls.len().max(1) as f64;
    let share = |f: &dyn Fn(&CallRow) -> bool| calls.iter().filter(|c| f(c)).count() as f64 / n;
    let scores: Vec<f64> = calls.iter().filter_map(|c| c.qa_score).collect();
    // Top-ups have no known inclusion probability: their verdicts stay out of the estimate.
    let observations: Vec<(bool, f64)> = sampled
        .iter()
        .filter(|s| s.in_design())
        .filter_map(|s| verdicts.get(s.call_id.as_str()).map(|passed| (!passed, s.inclusion_prob)))
        .collect();
    AgentMonth {
        agent_id: agent_id.into(),
        calls: calls.len(),
        sampled: sampled.len(),
        forbidden_rate: share(&|c| c.forbidden_hits.unwrap_or(0) > 0),
        required_missing_rate: share(&|c| c.required_missing.unwrap_or(0) > 0),
        long_silence_rate: share(&|c| c.long_silence(scorecard)),
        agent_interruption_rate: share(&|c| c.too_many_agent_interruptions(scorecard)),
        holds_per_call: calls.iter().map(|c| c.hold_count as f64).sum::<f64>() / n,
        long_hold_rate: share(&|c| c.hold_max_s >= scorecard.long_hold_s),
        agent_raised_voice_rate: share(&|c| month_events.raised_agent.contains(&c.call_id)),
        customer_raised_voice_rate: share(&|c| month_events.raised_customer.contains(&c.call_id)),
        mean_qa_score: (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64),
        evaluated: observations.len(),
        fail_rate: sampling::weighted_rate(&observations),
    }
}

/// Where `report` wrote its outputs.
pub struct ReportFiles {
    pub agent_month: PathBuf,
    pub rule_agreement: PathBuf,
    pub html: PathBuf,
    pub agents: Vec<AgentMonth>,
    pub rules: Vec<RuleAgreement>,
}

/// Where the report's audio links point.
pub struct AudioLinks<'a> {
    /// The muted copies of `callqa run --redacted-audio DIR`, used where one exists.
    pub redacted_dir: Option<&'a Path>,
}

/// Build `agent_month`, `rule_agreement`, the `evaluations` table and the HTML report for a
/// month (drawing the sample first if needed).
pub fn report(
    out: &Path,
    month: &str,
    settings: &SampleSettings,
    scorecard: &ScorecardSettings,
    audio: &AudioLinks,
) -> Result<ReportFiles, ReviewError> {
    let calls = month_calls(out, month)?;
    let mut samples = read_samples(out, month)?;
    if samples.is_empty() {
        samples = sample(out, month, settings, scorecard)?.0;
    }
    let evaluations = evaluations::sync_table(out)?;
    let latest = agreement::latest(&evaluations);
    let verdicts: HashMap<&str, bool> = latest.iter().map(|(id, e)| (*id, e.passed)).collect();
    let month_events = read_events(out, month, &samples)?;
    let mut agents: Vec<AgentMonth> = Vec::new();
    let mut by_agent: BTreeMap<&str, Vec<&CallRow>> = BTreeMap::new();
    for c in &calls {
        by_agent.entry(c.agent_id.as_str()).or_default().push(c);
    }
    let sampled_by_agent = sampling::by_agent(&samples);
    for (agent, rows) in &by_agent {
        let sampled = sampled_by_agent.get(agent).map_or(&[][..], Vec::as_slice);
        agents.push(summarise(agent, rows, sampled, &verdicts, &month_events, scorecard));
    }
    let everyone: Vec<&CallRow> = calls.iter().collect();
    let all_samples: Vec<&Selected> = samples.iter().collect();
    agents.push(summarise("ALL", &everyone, &all_samples, &verdicts, &month_events, scorecard));
    let flags: HashMap<String, BTreeSet<String>> = month_events
        .moments
        .iter()
        .map(|(id, moments)| (id.clone(), moments.iter().filter_map(|m| m.rule_id.clone()).collect()))
        .collect();
    let rules = agreement::rule_agreement(&flags, &latest, &samples);

    let agent_month = out.join("agent_month").join(format!("month={month}")).join("agent_month.parquet");
    pq::write_file(&agent_month, &pq::without_column(agent_month_batch(month, &agents)?, "month"))?;
    let rule_agreement = out.join("rule_agreement").join(format!("month={month}")).join("rule_agreement.parquet");
    pq::write_file(&rule_agreement, &pq::without_column(rule_agreement_batch(month, &rules)?, "month"))?;
    let transcripts = read_utterances(out, month, &samples)?;
    let audio_of = |c: &CallRow| -> PathBuf {
        let muted = audio.redacted_dir.map(|dir| crate::sinks::audio::copy_path(dir, &c.call_date, &c.call_id));
        let path = muted.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from(&c.source_path));
        std::fs::canonicalize(&path).unwrap_or(path)
    };
    let recordings: HashMap<&str, PathBuf> = calls.iter().map(|c| (c.call_id.as_str(), audio_of(c))).collect();
    let html = out.join("reports").join(format!("qa-{month}.html"));
    let page = html::render(&html::Page {
        month,
        calls: &calls,
        agents: &agents,
        samples: &samples,
        moments: &month_events.moments,
        transcripts: &transcripts,
        recordings: &recordings,
        rules: &rules,
    });
    std::fs::create_dir_all(html.parent().unwrap())
        .map_err(|e| ReviewError::Write { path: html.clone(), reason: e.to_string() })?;
    let tmp = html.with_extension("html.tmp");
    std::fs::write(&tmp, page)
        .and_then(|_| std::fs::rename(&tmp, &html))
        .map_err(|e| ReviewError::Write { path: html.clone(), reason: e.to_string() })?;
    Ok(ReportFiles { agent_month, rule_agreement, html, agents, rules })
}

fn agent_month_batch(month: &str, agents: &[AgentMonth]) -> Result<RecordBatch, SinkError> {
    let schema = schema::agent_month().schema;
    let est = |g: fn(&sampling::Estimate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(agents.iter().map(|a| a.fail_rate.as_ref().map(g))))
    };
    let rate =
        |g: fn(&AgentMonth) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(agents.iter().map(g))) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(month, agents.len()))),
        Arc::new(StringArray::from_iter_values(agents.iter().map(|a| a.agent_id.as_str()))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.calls as i32))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.sampled as i32))),
        rate(|a| a.forbidden_rate),
        rate(|a| a.required_missing_rate),
        rate(|a| a.long_silence_rate),
        rate(|a| a.agent_interruption_rate),
        rate(|a| a.holds_per_call),
        rate(|a| a.long_hold_rate),
        rate(|a| a.agent_raised_voice_rate),
        rate(|a| a.customer_raised_voice_rate),
        Arc::new(Float64Array::from_iter(agents.iter().map(|a| a.mean_qa_score))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.evaluated as i32))),
        est(|e| e.value),
        est(|e| e.low),
        est(|e| e.high),
    ];
    pq::batch("agent_month", schema, columns)
}

fn rule_agreement_batch(month: &str, rules: &[RuleAgreement]) -> Result<RecordBatch, SinkError> {
    let est = |g: fn(&sampling::Estimate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rules.iter().map(|r| r.precision.as_ref().map(g))))
    };
    let count = |g: fn(&RuleAgreement) -> usize| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(rules.iter().map(|r| g(r) as i32)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(month, rules.len()))),
        Arc::new(StringArray::from_iter_values(rules.iter().map(|r| r.rule_id.as_str()))),
        count(|r| r.evaluated),
        count(|r| r.confirmed),
        count(|r| r.rejected),
        est(|e| e.value),
        est(|e| e.low),
        est(|e| e.high),
        count(|r| r.missed),
    ];
    pq::batch("rule_agreement", schema::rule_agreement().schema, columns)
}

/// One event of a sampled call, as the report shows it.
#[derive(Debug, Clone)]
pub struct Moment {
    pub start_s: f64,
    pub end_s: f64,
    pub kind: String,
    pub speaker: Option<String>,
    pub rule_id: Option<String>,
    pub matched_text: Option<String>,
    pub detail: String,
}

/// What the report reads of the month's events.
#[derive(Default)]
struct MonthEvents {
    /// Sampled calls' events, in time order.
    moments: HashMap<String, Vec<Moment>>,
    /// Calls with a raised voice of the agent / of the customer.
    raised_agent: HashSet<String>,
    raised_customer: HashSet<String>,
}

fn read_events(out: &Path, month: &str, samples: &[Selected]) -> Result<MonthEvents, ReviewError> {
    let wanted: HashSet<&str> = samples.iter().map(|s| s.call_id.as_str()).collect();
    let mut found = MonthEvents::default();
    for (_, b) in pq::read_partitions(out, "events", &|date| date.starts_with(month))? {
        let (ids, kinds, details) = (strings(&b, "call_id"), strings(&b, "kind"), strings(&b, "detail"));
        let (speakers, rules, matched) = (strings(&b, "speaker"), strings(&b, "rule_id"), strings(&b, "matched_text"));
        let (starts, ends) = (f64s(&b, "start_s"), f64s(&b, "end_s"));
        for i in 0..b.num_rows() {
            let id = ids[i].clone().unwrap_or_default();
            let kind = kinds[i].clone().unwrap_or_default();
            if kind == "raised_voice" {
                match speakers[i].as_deref() {
                    Some("agent") => found.raised_agent.insert(id.clone()),
                    Some("customer") => found.raised_customer.insert(id.clone()),
                    _ => false,
                };
            }
            if wanted.contains(id.as_str()) {
                found.moments.entry(id).or_default().push(Moment {
                    start_s: starts[i].unwrap_or(0.0),
                    end_s: ends[i].unwrap_or(0.0),
                    kind,
                    speaker: speakers[i].clone(),
                    rule_id: rules[i].clone(),
                    matched_text: matched[i].clone(),
                    detail: details[i].clone().unwrap_or_default(),
                });
            }
        }
    }
    for v in found.moments.values_mut() {
        v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    }
    Ok(found)
}

/// One utterance of a sampled call: (start_s, end_s, speaker, text).
pub type Line = (f64, f64, String, String);

fn read_utterances(out: &Path, month: &str, samples: &[Selected]) -> Result<HashMap<String, Vec<Line>>, ReviewError> {
    let wanted: HashSet<&str> = samples.iter().map(|s| s.call_id.as_str()).collect();
    let mut found: HashMap<String, Vec<Line>> = HashMap::new();
    for (_, b) in pq::read_partitions(out, "utterances", &|date| date.starts_with(month))? {
        let (ids, speakers, texts) = (strings(&b, "call_id"), strings(&b, "speaker"), strings(&b, "text"));
        let (starts, ends) = (f64s(&b, "start_s"), f64s(&b, "end_s"));
        for i in 0..b.num_rows() {
            let id = ids[i].clone().unwrap_or_default();
            if wanted.contains(id.as_str()) {
                found.entry(id).or_default().push((
                    starts[i].unwrap_or(0.0),
                    ends[i].unwrap_or(0.0),
                    speakers[i].clone().unwrap_or_default(),
                    texts[i].clone().unwrap_or_default(),
                ));
            }
        }
    }
    for v in found.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_reasons_follow_the_scorecard_thresholds() {
        let call = CallRow {
            call_id: "c".into(),
            agent_id: "a".into(),
            call_date: "2026-10-01".into(),
            forbidden_hits: Some(0),
            required_missing: Some(0),
            silence_max_s: 20.0,
            interruptions_by_agent: Some(2),
            hold_count: 0,
            hold_max_s: 0.0,
            qa_score: Some(85.0),
            source_path: "c.wav".into(),
        };
        assert!(call.reasons(&ScorecardSettings::default()).is_empty());
        let strict = ScorecardSettings {
            long_silence_s: 15.0,
            max_agent_interruptions: 1,
            review_below_score: 90.0,
            ..Default::default()
        };
        assert_eq!(call.reasons(&strict), ["long_silence", "agent_interruptions", "low_qa_score"]);
    }
}
