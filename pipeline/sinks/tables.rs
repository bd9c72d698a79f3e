//! Rows: processed calls -> one Arrow record batch per table (columns as in [`super::schema`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Float32Array, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::parquet::{batch, date_to_days, SinkError};
use super::schema;
use crate::run::ProcessedCall;

/// Values shared by every row of a run.
pub struct RowContext<'a> {
    pub run_id: &'a str,
    pub processed_at: DateTime<Utc>,
    pub model: Option<&'a str>,
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

pub fn calls(calls: &[ProcessedCall], ctx: &RowContext) -> Result<RecordBatch, SinkError> {
    let t = schema::calls();
    let n = calls.len();
    let columns: Vec<ArrayRef> = vec![
        strings(calls.iter().map(|c| c.source.call_id.as_str())),
        Arc::new(StringArray::from_iter_values(calls.iter().map(|c| c.source.path.display().to_string()))),
        strings(calls.iter().map(|c| c.content_sha256.as_str())),
        Arc::new(Date32Array::from_iter_values(calls.iter().map(|c| date_to_days(c.source.call_date)))),
        utc_micros(calls.iter().map(|c| c.source.started_at.map(|t| t.timestamp_micros()))),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.source.agent_id.as_deref()))),
        Arc::new(Float64Array::from_iter_values(calls.iter().map(|c| c.duration_s))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.sample_rate_hz as i32))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.channels as i32))),
        strings(calls.iter().map(|c| c.codec)),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.language.as_deref()))),
        Arc::new(StringArray::from_iter(calls.iter().map(|_| ctx.model))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.utterances.len() as i32))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.dropped.total() as i32))),
        f64_opt(calls.iter().map(|c| c.metrics.agent_talk_s)),
        f64_opt(calls.iter().map(|c| c.metrics.customer_talk_s)),
        f64_opt(calls.iter().map(|c| c.metrics.overlap_s)),
        Arc::new(Float64Array::from_iter_values(calls.iter().map(|c| c.metrics.speech_s))),
        i32_opt(calls.iter().map(|c| c.metrics.interruptions_by_agent)),
        i32_opt(calls.iter().map(|c| c.metrics.interruptions_by_customer)),
        Arc::new(Float64Array::from_iter_values(calls.iter().map(|c| c.metrics.silence_s))),
        Arc::new(Int32Array::from_iter_values(calls.iter().map(|c| c.metrics.silence_events as i32))),
        Arc::new(Float64Array::from_iter_values(calls.iter().map(|c| c.metrics.silence_max_s))),
        f64_opt(calls.iter().map(|c| c.metrics.first_agent_speech_s)),
        f64_opt(calls.iter().map(|c| c.metrics.agent_rate)),
        f64_opt(calls.iter().map(|c| c.metrics.customer_rate)),
        f64_opt(calls.iter().map(|c| c.metrics.overall_rate)),
        Arc::new(StringArray::from_iter(calls.iter().map(|c| c.metrics.rate_unit.map(|u| u.as_str())))),
        i32_opt(calls.iter().map(|c| c.scores.map(|s| s.forbidden_hits))),
        i32_opt(calls.iter().map(|c| c.scores.map(|s| s.required_missing))),
        f64_opt(calls.iter().map(|c| c.scores.map(|s| s.qa_score))),
        strings(std::iter::repeat_n(schema::PIPELINE_VERSION, n)),
        strings(std::iter::repeat_n(ctx.run_id, n)),
        utc_micros(std::iter::repeat_n(Some(ctx.processed_at.timestamp_micros()), n)),
    ];
    batch(t.name, t.schema, columns)
}

pub fn utterances(calls: &[ProcessedCall]) -> Result<RecordBatch, SinkError> {
    let t = schema::utterances();
    let rows: Vec<_> = calls.iter().flat_map(|c| c.utterances.iter().map(move |u| (c, u))).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(c, _)| c.source.call_id.as_str())),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|(c, _)| date_to_days(c.source.call_date)))),
        strings(rows.iter().map(|(_, u)| u.speaker.as_str())),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, u)| u.start_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, u)| u.end_s))),
        strings(rows.iter().map(|(_, u)| u.text.as_str())),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|(_, u)| u.avg_logprob))),
        Arc::new(Float32Array::from_iter_values(rows.iter().map(|(_, u)| u.no_speech_prob))),
    ];
    batch(t.name, t.schema, columns)
}

pub fn events(calls: &[ProcessedCall]) -> Result<RecordBatch, SinkError> {
    let t = schema::events();
    let rows: Vec<_> = calls.iter().flat_map(|c| c.events.iter().map(move |e| (c, e))).collect();
    let columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|(c, _)| c.source.call_id.as_str())),
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|(c, _)| date_to_days(c.source.call_date)))),
        strings(rows.iter().map(|(_, e)| e.kind.as_str())),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, e)| e.speaker.map(|s| s.as_str())))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, e)| e.start_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, e)| e.end_s))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, e)| e.end_s - e.start_s))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, e)| e.rule_id.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, e)| e.severity.map(|s| s.as_str())))),
        strings(rows.iter().map(|(_, e)| e.detail.as_str())),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, e)| e.matched_text.as_deref()))),
        Arc::new(StringArray::from_iter(rows.iter().map(|(_, e)| e.match_type))),
        f64_opt(rows.iter().map(|(_, e)| e.similarity)),
        f64_opt(rows.iter().map(|(_, e)| e.points)),
    ];
    batch(t.name, t.schema, columns)
}

/// Every table of a run, by folder name.
pub fn build_all(processed: &[ProcessedCall], ctx: &RowContext) -> Result<Vec<(&'static str, RecordBatch)>, SinkError> {
    Ok(vec![("calls", calls(processed, ctx)?), ("utterances", utterances(processed)?), ("events", events(processed)?)])
}
