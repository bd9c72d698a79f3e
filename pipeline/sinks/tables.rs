//! Rows: scored calls, failures and runs -> one Arrow record batch per table (columns as in
//! [`super::schema`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Float32Array, Float64Array, Float64Builder, Int32Array, ListBuilder, StringArray,
    StringBuilder, StructBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::parquet::{batch, date_to_days, SinkError};
use super::schema;
use crate::metrics::CallMetrics;
use crate::record::{ScoredCall, Scores, Speaker, TimedToken};

/// Values shared by every row of a commit.
pub struct RowContext<'a> {
    pub run_id: &'a str,
    pub processed_at: DateTime<Utc>,
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn f64_opt(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(values))
}

fn i32_opt(values: impl Iterator<Item = Option<u32>>) -> ArrayRef {
    Arc::new(Int32Array::from_iter(values.map(|v| v.map(|v| v as i32))))
}

fn utc_micros(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone("UTC"))
}

pub fn calls(calls: &[ScoredCall], ctx: &RowContext) -> Result<RecordBatch, SinkError> {
    let t = schema::calls();
    let n = calls.len();
    let mut columns: Vec<ArrayRef> = vec![
        strings(calls.iter().map(|c| c.call.source.call_id.as_str())),
        Arc::new(StringArray::from_iter_values(calls.iter().map(|c| c.call.source.path.display().to_string()))),
        strings(calls.iter().map(|c| c.call.content_sha256.as_str())),
        Arc::new(Date32Array::from_iter_values(calls.iter().map(|c| date_to_days(c.call.source.call_date)))),
        utc_micros(calls.iter().map(|c| c.call.source.started_at.map(|t| t.timestamp_micros()))),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.call.source.agent_id.as_deref()))),
        Arc::new(Float64Array::from_iter_values(calls.iter().map(|c| c.call.facts.duration_s))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.call.facts.sample_rate_hz as i32))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.call.facts.channels as i32))),
        strings(calls.iter().map(|c| c.call.facts.codec)),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.call.language.as_deref()))),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.call.channel_language(Speaker::Agent)))),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.call.channel_language(Speaker::Customer)))),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.call.model.as_deref()))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.call.utterances.len() as i32))),
        f64_opt(calls.iter().map(|c| c.call.loudness.of(Speaker::Agent).and_then(|l| l.integrated_lufs))),
        f64_opt(calls.iter().map(|c| c.call.loudness.of(Speaker::Customer).and_then(|l| l.integrated_lufs))),
        f64_opt(calls.iter().map(|c| c.call.loudness.of(Speaker::Agent).and_then(|l| l.range_lu))),
        f64_opt(calls.iter().map(|c| c.call.loudness.of(Speaker::Customer).and_then(|l| l.range_lu))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.call.dropped.total() as i32))),
    ];
    columns.extend(scorecard_columns(calls.iter().map(|c| (&c.metrics, c.scores))));
    columns.extend([
        strings(std::iter::repeat_n(schema::PIPELINE_VERSION, n)),
        strings(std::iter::repeat_n(ctx.run_id, n)),
        utc_micros(std::iter::repeat_n(Some(ctx.processed_at.timestamp_micros()), n)),
    ]);
    batch(t.name, t.schema, columns)
}

/// The columns of `calls` that scoring computes, `agent_talk_s` to `qa_score` in schema
/// order: what `callqa rescore` replaces.
pub fn scorecard_columns<'a>(rows: impl Iterator<Item = (&'a CallMetrics, Option<Scores>)> + Clone) -> Vec<ArrayRef> {
    let metrics = || rows.clone().map(|(m, _)| m);
    let scores = || rows.clone().map(|(_, s)| s);
    vec![
        f64_opt(metrics().map(|m| m.agent_talk_s)),
        f64_opt(metrics().map(|m| m.customer_talk_s)),
        f64_opt(metrics().map(|m| m.overlap_s)),
        Arc::new(Float64Array::from_iter_values(metrics().map(|m| m.speech_s))),
        i32_opt(metrics().map(|m| m.interruptions_by_agent)),
        i32_opt(metrics().map(|m| m.interruptions_by_customer)),
        Arc::new(Float64Array::from_iter_values(metrics().map(|m| m.silence_s))),
        Arc::new(Int32Array::from_iter_values(metrics().map(|m| m.silence_events as i32))),
        Arc::new(Float64Array::from_iter_values(metrics().map(|m| m.silence_max_s))),
        Arc::new(Int32Array::from_iter_values(metrics().map(|m| m.hold_count as i32))),
        Arc::new(Float64Array::from_iter_values(metrics().map(|m| m.hold_s))),
        Arc::new(Float64Array::from_iter_values(metrics().map(|m| m.hold_max_s))),
        f64_opt(metrics().map(|m| m.first_agent_speech_s)),
        f64_opt(metrics().map(|m| m.agent_rate)),
        f64_opt(metrics().map(|m| m.customer_rate)),
        f64_opt(metrics().map(|m| m.overall_rate)),
        Arc::new(StringArray::from_iter(metrics().map(|m| m.rate_unit.map(|u| u.as_str())))),
        i32_opt(scores().map(|s| s.map(|s| s.forbidden_hits))),
        i32_opt(scores().map(|s| s.map(|s| s.required_missing))),
        f64_opt(scores().map(|s| s.map(|s| s.qa_score))),
    ]
}

pub fn utterances(calls: &[ScoredCall]) -> Result<RecordBatch, SinkError> {
    let t = schema::utterances();
    let rows: Vec<_> = calls.iter().flat_map(|c| c.call.utterances.iter().map(move |u| (c, u))).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(c, _)| c.call.source.call_id.as_str())),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|(c, _)| date_to_days(c.call.source.call_date)))),
        strings(rows.iter().map(|(_, u)| u.speaker.as_str())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, u)| u.start_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, u)| u.end_s))),
        strings(rows.iter().map(|(_, u)| u.text.as_str())),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|(_, u)| u.avg_logprob))),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|(_, u)| u.no_speech_prob))),
        token_lists(rows.iter().map(|(_, u)| u.tokens.as_slice())),
    ];
    batch(t.name, t.schema, columns)
}

fn token_lists<'a>(utterances: impl Iterator<Item = &'a [TimedToken]>) -> ArrayRef {
    let DataType::Struct(fields) = schema::token_type() else { unreachable!("tokens are structs") };
    let mut builder = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    for tokens in utterances {
        let items = builder.values();
        for t in tokens {
            items.field_builder::<StringBuilder>(0).expect("text").append_value(&t.text);
            items.field_builder::<Float64Builder>(1).expect("start_s").append_value(t.start_s);
            items.field_builder::<Float64Builder>(2).expect("end_s").append_value(t.end_s);
            items.append(true);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

pub fn speech(calls: &[ScoredCall]) -> Result<RecordBatch, SinkError> {
    let t = schema::speech();
    let rows: Vec<_> = calls
        .iter()
        .flat_map(|c| {
            c.call.speech.iter().flat_map(move |(speaker, spans)| spans.iter().map(move |s| (c, *speaker, s)))
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(c, _, _)| c.call.source.call_id.as_str())),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|(c, _, _)| date_to_days(c.call.source.call_date)))),
        strings(rows.iter().map(|(_, speaker, _)| speaker.as_str())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, s)| s.start_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, s)| s.end_s))),
    ];
    batch(t.name, t.schema, columns)
}

pub fn events(calls: &[ScoredCall]) -> Result<RecordBatch, SinkError> {
    let rows = calls
        .iter()
        .flat_map(|c| c.events.iter().map(move |e| (c.call.source.call_id.as_str(), c.call.source.call_date, e)));
    event_rows(rows.collect())
}

/// `events` rows: (call_id, call_date, event).
pub fn event_rows(rows: Vec<(&str, chrono::NaiveDate, &crate::record::Event)>) -> Result<RecordBatch, SinkError> {
    let t = schema::events();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(id, _, _)| *id)),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|(_, date, _)| date_to_days(*date)))),
        strings(rows.iter().map(|(_, _, e)| e.kind.as_str())),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, e)| e.speaker.map(|s| s.as_str())))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, e)| e.start_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, e)| e.end_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, _, e)| e.end_s - e.start_s))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, e)| e.rule_id.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, e)| e.severity.map(|s| s.as_str())))),
        strings(rows.iter().map(|(_, _, e)| e.detail.as_str())),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, e)| e.matched_text.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, _, e)| e.match_type))),
        f64_opt(rows.iter().map(|(_, _, e)| e.similarity)),
        f64_opt(rows.iter().map(|(_, _, e)| e.points)),
    ];
    batch(t.name, t.schema, columns)
}

/// Every table of a commit, by folder name, in commit order: `calls` last (see [`super::commit`]).
pub fn build_all(scored: &[ScoredCall], ctx: &RowContext) -> Result<Vec<(&'static str, RecordBatch)>, SinkError> {
    Ok(vec![
        ("utterances", utterances(scored)?),
        ("speech", speech(scored)?),
        ("events", events(scored)?),
        ("calls", calls(scored, ctx)?),
    ])
}

pub fn failures(rows: &[FailureRow]) -> Result<RecordBatch, SinkError> {
    let t = schema::failures();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| r.call_id.as_str())),
        strings(rows.iter().map(|r| r.source_path.as_str())),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.content_sha256.as_deref()))),
        strings(rows.iter().map(|r| r.stage.as_str())),
        strings(rows.iter().map(|r| r.error_type.as_str())),
        strings(rows.iter().map(|r| r.reason.as_str())),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.attempts as i32))),
        strings(rows.iter().map(|r| r.run_id.as_str())),
        utc_micros(rows.iter().map(|r| Some(r.failed_at.timestamp_micros()))),
    ];
    batch(t.name, t.schema, columns)
}

pub fn runs(row: &RunRow) -> Result<RecordBatch, SinkError> {
    let t = schema::runs();
    let counts = row.finished.as_ref();
    let columns: Vec<ArrayRef> = vec![
        strings(std::iter::once(row.run_id.as_str())),
        utc_micros(std::iter::once(Some(row.started_at.timestamp_micros()))),
        utc_micros(std::iter::once(counts.map(|f| f.finished_at.timestamp_micros()))),
        strings(std::iter::once(row.host.as_str())),
        strings(std::iter::once(row.command_line.as_str())),
        strings(std::iter::once(row.config_sha256.as_str())),
        Arc::new(StringArray::from_iter(std::iter::once(row.model.as_deref()))),
        Arc::new(StringArray::from_iter(std::iter::once(row.shard.as_deref()))),
        strings(std::iter::once(schema::PIPELINE_VERSION)),
        i32_opt(std::iter::once(counts.map(|f| f.ok))),
        i32_opt(std::iter::once(counts.map(|f| f.failed))),
        i32_opt(std::iter::once(counts.map(|f| f.skipped))),
        f64_opt(std::iter::once(counts.map(|f| f.audio_s))),
        f64_opt(std::iter::once(counts.map(|f| f.wall_s))),
        i32_opt(std::iter::once(counts.map(|f| f.exit_status))),
    ];
    batch(t.name, t.schema, columns)
}

/// One row of the `failures` table.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRow {
    pub call_id: String,
    pub source_path: String,
    pub content_sha256: Option<String>,
    pub stage: String,
    pub error_type: String,
    pub reason: String,
    pub attempts: u32,
    pub run_id: String,
    pub failed_at: DateTime<Utc>,
}

/// One row of the `runs` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub host: String,
    pub command_line: String,
    pub config_sha256: String,
    pub model: Option<String>,
    /// `K/N` when the run is one shard of a batch.
    pub shard: Option<String>,
    /// `None` while the run is going (and for ever if it is killed).
    pub finished: Option<RunTotals>,
}

impl RunRow {
    /// The row of a run `holder` starts now: this command line, the config's hash.
    pub fn start(
        holder: &crate::run::lock::Holder,
        started_at: DateTime<Utc>,
        config: &crate::config::Config,
        model: Option<String>,
    ) -> RunRow {
        use sha2::{Digest, Sha256};
        RunRow {
            run_id: holder.run_id.clone(),
            started_at,
            host: holder.host.clone(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            config_sha256: crate::run::stages::hex(&Sha256::digest(config.to_toml().as_bytes())),
            model,
            shard: None,
            finished: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunTotals {
    pub finished_at: DateTime<Utc>,
    pub ok: u32,
    pub failed: u32,
    pub skipped: u32,
    pub audio_s: f64,
    pub wall_s: f64,
    pub exit_status: u32,
}
