//! The monthly review, at the edge: `calls` / `events` tables -> `samples`, `agent_month` and a
//! self-contained HTML report.
//!
//! `sample` flags risky calls from the scored `calls` of a month and draws the human-review
//! sample ([`crate::sampling`]); `report` summarises each agent (automated violation rates,
//! mean score, and, where human verdicts exist in `OUT/evaluations/*.csv` with columns
//! `call_id,passed`, the weighted fail-rate estimate with its 95% interval).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

use crate::rules::scorecard::ScorecardSettings;
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
    pub qa_score: Option<f64>,
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

fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
        .map(|a| (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
}

fn i32s(batch: &RecordBatch, name: &str) -> Vec<Option<i32>> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
        .map(|a| (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
        .unwrap_or_else(|| vec![None; batch.num_rows()])
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
                    qa_score: score[i],
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

/// Human verdicts from `OUT/evaluations/*.csv` (`call_id,passed`).
pub fn read_evaluations(out: &Path) -> Result<HashMap<String, bool>, ReviewError> {
    let mut verdicts = HashMap::new();
    let dir = out.join("evaluations");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(verdicts) };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    paths.sort();
    for path in paths {
        let fail = |reason: String| ReviewError::Evaluations { path: path.clone(), reason };
        let mut reader = csv::Reader::from_path(&path).map_err(|e| fail(e.to_string()))?;
        for row in reader.deserialize::<(String, String)>() {
            let (call_id, passed) = row.map_err(|e| fail(e.to_string()))?;
            let passed = match passed.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "pass" => true,
                "false" | "0" | "no" | "fail" => false,
                other => return Err(fail(format!("passed must be true/false, not {other:?}"))),
            };
            verdicts.insert(call_id, passed);
        }
    }
    Ok(verdicts)
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
    pub mean_qa_score: Option<f64>,
    pub evaluated: usize,
    pub fail_rate: Option<sampling::Estimate>,
}

fn summarise(
    agent_id: &str,
    calls: &[&CallRow],
    sampled: &[&Selected],
    verdicts: &HashMap<String, bool>,
    scorecard: &ScorecardSettings,
) -> AgentMonth {
    let n = calls.len().max(1) as f64;
    let share = |f: &dyn Fn(&CallRow) -> bool| calls.iter().filter(|c| f(c)).count() as f64 / n;
    let scores: Vec<f64> = calls.iter().filter_map(|c| c.qa_score).collect();
    // Top-ups have no known inclusion probability: their verdicts stay out of the estimate.
    let observations: Vec<(bool, f64)> = sampled
        .iter()
        .filter(|s| s.in_design())
        .filter_map(|s| verdicts.get(&s.call_id).map(|passed| (!passed, s.inclusion_prob)))
        .collect();
    AgentMonth {
        agent_id: agent_id.into(),
        calls: calls.len(),
        sampled: sampled.len(),
        forbidden_rate: share(&|c| c.forbidden_hits.unwrap_or(0) > 0),
        required_missing_rate: share(&|c| c.required_missing.unwrap_or(0) > 0),
        long_silence_rate: share(&|c| c.long_silence(scorecard)),
        agent_interruption_rate: share(&|c| c.too_many_agent_interruptions(scorecard)),
        mean_qa_score: (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64),
        evaluated: observations.len(),
        fail_rate: sampling::weighted_rate(&observations),
    }
}

/// Where `report` wrote its outputs.
pub struct ReportFiles {
    pub agent_month: PathBuf,
    pub html: PathBuf,
    pub agents: Vec<AgentMonth>,
}

/// Build `agent_month` and the HTML report for a month (drawing the sample first if needed).
pub fn report(
    out: &Path,
    month: &str,
    settings: &SampleSettings,
    scorecard: &ScorecardSettings,
) -> Result<ReportFiles, ReviewError> {
    let calls = month_calls(out, month)?;
    let mut samples = read_samples(out, month)?;
    if samples.is_empty() {
        samples = sample(out, month, settings, scorecard)?.0;
    }
    let verdicts = read_evaluations(out)?;
    let mut agents: Vec<AgentMonth> = Vec::new();
    let mut by_agent: BTreeMap<&str, Vec<&CallRow>> = BTreeMap::new();
    for c in &calls {
        by_agent.entry(c.agent_id.as_str()).or_default().push(c);
    }
    let sampled_by_agent = sampling::by_agent(&samples);
    for (agent, rows) in &by_agent {
        let sampled = sampled_by_agent.get(agent).map_or(&[][..], Vec::as_slice);
        agents.push(summarise(agent, rows, sampled, &verdicts, scorecard));
    }
    let everyone: Vec<&CallRow> = calls.iter().collect();
    let all_samples: Vec<&Selected> = samples.iter().collect();
    agents.push(summarise("ALL", &everyone, &all_samples, &verdicts, scorecard));

    let agent_month = out.join("agent_month").join(format!("month={month}")).join("agent_month.parquet");
    pq::write_file(&agent_month, &pq::without_column(agent_month_batch(month, &agents)?, "month"))?;
    let events = read_events(out, month, &samples)?;
    let html = out.join("reports").join(format!("qa-{month}.html"));
    let page = render_html(month, &calls, &agents, &samples, &events);
    std::fs::create_dir_all(html.parent().unwrap())
        .map_err(|e| ReviewError::Write { path: html.clone(), reason: e.to_string() })?;
    let tmp = html.with_extension("html.tmp");
    std::fs::write(&tmp, page)
        .and_then(|_| std::fs::rename(&tmp, &html))
        .map_err(|e| ReviewError::Write { path: html.clone(), reason: e.to_string() })?;
    Ok(ReportFiles { agent_month, html, agents })
}

fn agent_month_batch(month: &str, agents: &[AgentMonth]) -> Result<RecordBatch, SinkError> {
    let schema = schema::agent_month().schema;
    let est = |g: fn(&sampling::Estimate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter(agents.iter().map(|a| a.fail_rate.as_ref().map(g))))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(month, agents.len()))),
        Arc::new(StringArray::from_iter_values(agents.iter().map(|a| a.agent_id.as_str()))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.calls as i32))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.sampled as i32))),
        Arc::new(Float64Array::from_iter_values(agents.iter().map(|a| a.forbidden_rate))),
        Arc::new(Float64Array::from_iter_values(agents.iter().map(|a| a.required_missing_rate))),
        Arc::new(Float64Array::from_iter_values(agents.iter().map(|a| a.long_silence_rate))),
        Arc::new(Float64Array::from_iter_values(agents.iter().map(|a| a.agent_interruption_rate))),
        Arc::new(Float64Array::from_iter(agents.iter().map(|a| a.mean_qa_score))),
        Arc::new(Int32Array::from_iter_values(agents.iter().map(|a| a.evaluated as i32))),
        est(|e| e.value),
        est(|e| e.low),
        est(|e| e.high),
    ];
    pq::batch("agent_month", schema, columns)
}

/// (call_id -> [(start_s, kind, detail)]) for the sampled calls.
fn read_events(
    out: &Path,
    month: &str,
    samples: &[Selected],
) -> Result<HashMap<String, Vec<(f64, String, String)>>, ReviewError> {
    let wanted: HashSet<&str> = samples.iter().map(|s| s.call_id.as_str()).collect();
    let mut found: HashMap<String, Vec<(f64, String, String)>> = HashMap::new();
    for (_, b) in pq::read_partitions(out, "events", &|date| date.starts_with(month))? {
        let (ids, kinds, details, starts) =
            (strings(&b, "call_id"), strings(&b, "kind"), strings(&b, "detail"), f64s(&b, "start_s"));
        for i in 0..b.num_rows() {
            let id = ids[i].clone().unwrap_or_default();
            if wanted.contains(id.as_str()) {
                found.entry(id).or_default().push((
                    starts[i].unwrap_or(0.0),
                    kinds[i].clone().unwrap_or_default(),
                    details[i].clone().unwrap_or_default(),
                ));
            }
        }
    }
    for v in found.values_mut() {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(found)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn clock(seconds: f64) -> String {
    format!("{}:{:04.1}", (seconds / 60.0).floor() as u64, seconds % 60.0)
}

fn render_html(
    month: &str,
    calls: &[CallRow],
    agents: &[AgentMonth],
    samples: &[Selected],
    events: &HashMap<String, Vec<(f64, String, String)>>,
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><title>QA report {month}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .risk{{color:#a00}}#coach td{{text-align:left}}h2{{margin-top:28px}}</style></head><body>\
         <h1>QA report {month}</h1><p>{} calls scored automatically; {} selected for human review ({:.1}%).</p>",
        calls.len(),
        samples.len(),
        100.0 * samples.len() as f64 / calls.len().max(1) as f64
    );
    // Score distribution: bars of 10 points.
    let mut bins = [0usize; 10];
    for s in calls.iter().filter_map(|c| c.qa_score) {
        bins[((s / 10.0).floor() as usize).min(9)] += 1;
    }
    let peak = bins.iter().copied().max().unwrap_or(0).max(1);
    h.push_str("<h2>Score distribution</h2><svg id=\"scores\" width=\"520\" height=\"170\" role=\"img\">");
    for (i, &n) in bins.iter().enumerate() {
        let height = 120.0 * n as f64 / peak as f64;
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{:.0}\" width=\"44\" height=\"{height:.0}\" fill=\"#4a7\"/><text x=\"{}\" y=\"150\" font-size=\"11\">{}-{}</text><text x=\"{}\" y=\"{:.0}\" font-size=\"11\">{n}</text>",
            10 + i * 50,
            130.0 - height,
            12 + i * 50,
            i * 10,
            i * 10 + 9 + usize::from(i == 9),
            24 + i * 50,
            126.0 - height
        );
    }
    h.push_str("</svg>");
    // Per-agent table with interval bars.
    h.push_str("<h2>Agents</h2><table id=\"agents\"><tr><th>agent</th><th>calls</th><th>sampled</th><th>banned phrase</th><th>required missing</th><th>long silence</th><th>interrupts</th><th>mean score</th><th>human fail rate (95% interval)</th></tr>");
    let pct = |x: f64| format!("{:.0}%", 100.0 * x);
    for a in agents {
        let estimate = match &a.fail_rate {
            Some(e) => format!(
                "{} ({}&ndash;{}, n={}) <svg width=\"120\" height=\"10\"><rect x=\"0\" y=\"4\" width=\"120\" height=\"2\" fill=\"#ddd\"/><rect x=\"{:.0}\" y=\"1\" width=\"{:.0}\" height=\"8\" fill=\"#69c\"/><rect x=\"{:.0}\" y=\"0\" width=\"2\" height=\"10\" fill=\"#036\"/></svg>",
                pct(e.value), pct(e.low), pct(e.high), e.n, 120.0 * e.low, (120.0 * (e.high - e.low)).max(1.0), 120.0 * e.value
            ),
            None => "no verdicts yet".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{estimate}</td></tr>",
            escape(&a.agent_id),
            a.calls,
            a.sampled,
            pct(a.forbidden_rate),
            pct(a.required_missing_rate),
            pct(a.long_silence_rate),
            pct(a.agent_interruption_rate),
            a.mean_qa_score.map_or("-".into(), |s| format!("{s:.1}"))
        );
    }
    h.push_str("</table>");
    // Calls to coach: risk first, each with the moments to listen to.
    h.push_str("<h2>Calls to coach</h2><table id=\"coach\"><tr><th>call</th><th>agent</th><th>stratum</th><th>weight</th><th>why</th><th>listen at</th></tr>");
    let mut ordered: Vec<&Selected> = samples.iter().collect();
    ordered.sort_by(|a, b| b.stratum.cmp(a.stratum).then(a.call_id.cmp(&b.call_id)));
    for s in ordered {
        let moments: Vec<String> = events
            .get(&s.call_id)
            .map(|v| {
                v.iter()
                    // Deductions repeat their moment; redactions are not coaching moments.
                    .filter(|(_, kind, _)| kind != "metric_threshold" && kind != "pii")
                    .take(6)
                    .map(|(t, kind, detail)| format!("{} {} <small>{}</small>", clock(*t), kind, escape(detail)))
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.call_id),
            escape(&s.agent_id),
            s.stratum,
            s.stratum,
            if s.in_design() { format!("{:.1}", 1.0 / s.inclusion_prob) } else { "-".into() },
            escape(&s.reason),
            if moments.is_empty() { "-".into() } else { moments.join("<br>") }
        );
    }
    h.push_str("</table><p><small>Weights are 1 / inclusion probability: use them for any rate estimated from the reviewed calls. Top-ups (weight -) were chosen to reach a minimum, not drawn by the design: they are left out of the estimates.</small></p></body></html>\n");
    h
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
            qa_score: Some(85.0),
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
