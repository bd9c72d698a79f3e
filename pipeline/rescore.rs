//! Rescoring: stored transcripts and speech intervals + a (new) config -> new metrics, events
//! and scores, without audio or a model. Rules change weekly; transcripts do not.
//!
//! In: the latest version of every call in OUT whose `call_date` is in the range, with its
//! `utterances` (tokens included), `speech` intervals, and its `pii`, `raised_voice` and
//! `music` events (what the transcript and the audio gave). Out: a new version of each call,
//! committed as a run commits (one commit per call date: `utterances`, `speech` and `events`
//! files, then the `calls` file), after which the old versions are dropped.
//! The run's recovery therefore makes a rescore killed at any instant safe, and a rerun
//! finish it; a reader sees each call's old or new rows, and both only in the window a
//! run's reprocessing has too (README, Durable runs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};

use crate::config::Config;
use crate::record::{Event, EventKind, Speaker, SpeechInterval, TimedToken, Utterance};
use crate::run::lock::{self, LockError};
use crate::run::stages::{self, ScoringInput};
use crate::sinks::commit;
use crate::sinks::parquet::{self as pq, Partitions, SinkError};
use crate::sinks::schema;
use crate::sinks::tables::{self, RunRow, RunTotals};
use crate::storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Range(String),
    #[error("{} was written by a callqa older than rescoring (it has no {missing}); process its calls again with `callqa run --reprocess`", path.display())]
    TooOld { path: PathBuf, missing: &'static str },
}

/// Call dates to rescore, both ends included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    /// `--month YYYY-MM`.
    pub fn month(month: &str) -> Result<DateRange, RescoreError> {
        let bad = || RescoreError::Range(format!("--month {month:?} is not YYYY-MM"));
        let from = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
        let next = from.checked_add_months(chrono::Months::new(1)).ok_or_else(bad)?;
        Ok(DateRange { from, to: next.pred_opt().ok_or_else(bad)? })
    }

    /// `--from DATE --to DATE`.
    pub fn between(from: NaiveDate, to: NaiveDate) -> Result<DateRange, RescoreError> {
        if from > to {
            return Err(RescoreError::Range(format!("--from {from} is after --to {to}")));
        }
        Ok(DateRange { from, to })
    }

    fn contains(&self, partition_value: &str) -> bool {
        NaiveDate::parse_from_str(partition_value, "%Y-%m-%d").is_ok_and(|d| self.from <= d && d <= self.to)
    }
}

/// What a rescore did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RescoreSummary {
    pub run_id: String,
    pub dates: usize,
    pub calls: usize,
    pub wall_s: f64,
}

/// Rescore every call of `out` in `range` with `config`'s rules, metric settings and
/// scorecard.
pub fn rescore(out: &Path, config: &Config, range: &DateRange) -> Result<RescoreSummary, RescoreError> {
    let clock = std::time::Instant::now();
    let started = Utc::now();
    let run_id = crate::run::new_run_id(started, None);
    config.privacy.output_access.apply();
    let holder = lock::Holder::this_process(&run_id, started);
    let store = Storage::local(out);
    let _lock = lock::OutputLock::acquire(&store, &holder)?;
    let mut dates: Vec<String> = pq::table_files(&store, "calls")?
        .iter()
        .filter_map(|k| pq::partition_date(k).map(str::to_string))
        .filter(|d| range.contains(d))
        .collect();
    dates.sort();
    dates.dedup();
    let partitions = Partitions::Dates(dates.iter().cloned().collect());
    commit::recover(&store, commit::Scope::default(), &partitions)?;
    let mut run_row = RunRow::start(&holder, started, config, None);
    commit::write_run(&store, &run_row)?;
    commit::mark_open(&store, &run_id, &dates.iter().cloned().collect())?;
    let mut summary = RescoreSummary { run_id: run_id.clone(), ..Default::default() };
    for (seq, date) in dates.iter().enumerate() {
        summary.calls += rescore_date(out, date, config, &run_id, seq as u32)?;
        summary.dates += 1;
    }
    // The old versions go exactly as a reprocessing run's do.
    commit::recover(&store, commit::Scope::default(), &partitions)?;
    summary.wall_s = clock.elapsed().as_secs_f64();
    run_row.finished = Some(RunTotals {
        finished_at: Utc::now(),
        ok: summary.calls as u32,
        failed: 0,
        skipped: 0,
        audio_s: 0.0,
        wall_s: summary.wall_s,
        exit_status: 0,
    });
    commit::write_run(&store, &run_row)?;
    Ok(summary)
}

/// One table's rows in one partition, as one batch (`None` when it has no files).
fn partition_rows(out: &Path, table: &str, date: &str) -> Result<Option<(PathBuf, RecordBatch)>, RescoreError> {
    let dir = out.join(table).join(format!("call_date={date}"));
    let files: Vec<PathBuf> = pq::table_files(&Storage::local(out), &format!("{table}/call_date={date}"))?
        .iter()
        .map(|k| out.join(k))
        .collect();
    let mut batches = Vec::new();
    for path in &files {
        batches.extend(pq::read_file(path)?);
    }
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let whole = concat_batches(&first.schema(), &batches)
        .map_err(|e| SinkError::Read { path: dir.clone(), reason: e.to_string() })?;
    Ok(Some((dir, whole)))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a StringArray, RescoreError> {
    Ok(pq::column::<StringArray>(batch, name, path)?)
}

fn f64s<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a Float64Array, RescoreError> {
    Ok(pq::column::<Float64Array>(batch, name, path)?)
}

fn speaker(name: &str) -> Speaker {
    match name {
        "agent" => Speaker::Agent,
        "customer" => Speaker::Customer,
        _ => Speaker::Mixed,
    }
}

/// Row indices of `batch` by call_id.
fn rows_by_call(batch: Option<&(PathBuf, RecordBatch)>) -> Result<HashMap<String, Vec<usize>>, RescoreError> {
    let mut by_call: HashMap<String, Vec<usize>> = HashMap::new();
    if let Some((path, b)) = batch {
        for (i, id) in strings(b, "call_id", path)?.iter().enumerate() {
            by_call.entry(id.unwrap_or_default().to_string()).or_default().push(i);
        }
    }
    Ok(by_call)
}

fn utterances_of(rows: &[usize], path: &Path, b: &RecordBatch) -> Result<Vec<Utterance>, RescoreError> {
    let tokens = b
        .column_by_name("tokens")
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or(RescoreError::TooOld { path: path.to_path_buf(), missing: "utterances.tokens column" })?;
    let (speakers, texts) = (strings(b, "speaker", path)?, strings(b, "text", path)?);
    let (starts, ends) = (f64s(b, "start_s", path)?, f64s(b, "end_s", path)?);
    let logprobs = pq::column::<Float32Array>(b, "avg_logprob", path)?;
    let no_speech = pq::column::<Float32Array>(b, "no_speech_prob", path)?;
    let mut out = Vec::with_capacity(rows.len());
    for &i in rows {
        let list = tokens.value(i);
        let items = list.as_struct();
        let (text, start, end) = (
            items.column(0).as_string::<i32>(),
            items.column(1).as_primitive::<Float64Type>(),
            items.column(2).as_primitive::<Float64Type>(),
        );
        out.push(Utterance {
            speaker: speaker(speakers.value(i)),
            start_s: starts.value(i),
            end_s: ends.value(i),
            text: texts.value(i).to_string(),
            avg_logprob: logprobs.value(i),
            no_speech_prob: no_speech.value(i),
            tokens: (0..items.len())
                .map(|k| TimedToken { text: text.value(k).to_string(), start_s: start.value(k), end_s: end.value(k) })
                .collect(),
        });
    }
    Ok(out)
}

/// Rescore one call date; returns how many calls it held.
fn rescore_date(out: &Path, date: &str, config: &Config, run_id: &str, seq: u32) -> Result<usize, RescoreError> {
    let Some((calls_path, calls)) = partition_rows(out, "calls", date)? else {
        return Ok(0);
    };
    let utterances = partition_rows(out, "utterances", date)?;
    let speech = partition_rows(out, "speech", date)?;
    let events = partition_rows(out, "events", date)?;
    if calls.column_by_name("agent_language").is_none() {
        return Err(RescoreError::TooOld { path: calls_path, missing: "calls.agent_language column" });
    }
    let speech_dir = out.join("speech").join(format!("call_date={date}"));
    let (utterance_rows, speech_rows) = (rows_by_call(utterances.as_ref())?, rows_by_call(speech.as_ref())?);
    if speech.is_none() && calls.num_rows() > 0 && !speech_dir.exists() {
        return Err(RescoreError::TooOld { path: speech_dir, missing: "speech table" });
    }
    let date_value = NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a partition of the range");
    let path = &calls_path;
    let ids = strings(&calls, "call_id", path)?;
    let durations = f64s(&calls, "duration_s", path)?;
    let channels = pq::column::<Int32Array>(&calls, "channels", path)?;
    let languages = strings(&calls, "language", path)?;
    let agent_languages = strings(&calls, "agent_language", path)?;
    let customer_languages = strings(&calls, "customer_language", path)?;
    let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    // Music found in the audio: holds are measured again from it.
    let mut music: HashMap<String, Vec<SpeechInterval>> = HashMap::new();
    if let Some((path, b)) = &events {
        let (call_ids, kinds) = (strings(b, "call_id", path)?, strings(b, "kind", path)?);
        let (starts, ends) = (f64s(b, "start_s", path)?, f64s(b, "end_s", path)?);
        for k in (0..b.num_rows()).filter(|&k| kinds.value(k) == EventKind::Music.as_str()) {
            let interval = SpeechInterval { start_s: starts.value(k), end_s: ends.value(k) };
            music.entry(call_ids.value(k).to_string()).or_default().push(interval);
        }
    }

    let mut assessed = Vec::with_capacity(calls.num_rows());
    for i in 0..calls.num_rows() {
        let id = ids.value(i);
        let none = Vec::new();
        let utterances = match &utterances {
            Some((path, b)) => utterances_of(utterance_rows.get(id).unwrap_or(&none), path, b)?,
            None => Vec::new(),
        };
        let speakers: &[Speaker] =
            if channels.value(i) == 1 { &[Speaker::Mixed] } else { &[Speaker::Agent, Speaker::Customer] };
        let mut by_speaker: Vec<(Speaker, Vec<SpeechInterval>)> = speakers.iter().map(|s| (*s, Vec::new())).collect();
        if let Some((path, b)) = &speech {
            let (who, starts, ends) =
                (strings(b, "speaker", path)?, f64s(b, "start_s", path)?, f64s(b, "end_s", path)?);
            for &k in speech_rows.get(id).unwrap_or(&none) {
                if let Some((_, spans)) = by_speaker.iter_mut().find(|(s, _)| *s == speaker(who.value(k))) {
                    spans.push(SpeechInterval { start_s: starts.value(k), end_s: ends.value(k) });
                }
            }
        }
        let channel_languages: Vec<(Speaker, String)> =
            [(Speaker::Agent, text(agent_languages, i)), (Speaker::Customer, text(customer_languages, i))]
                .into_iter()
                .filter_map(|(s, l)| Some((s, l?)))
                .collect();
        let language = text(languages, i);
        let input = ScoringInput {
            speech: &by_speaker,
            music: music.get(id).map_or(&[][..], Vec::as_slice),
            utterances: &utterances,
            duration_s: durations.value(i),
            language: language.as_deref(),
            channel_languages: &channel_languages,
        };
        assessed.push(stages::assess(&input, config));
    }

    // calls: every column kept but what scoring computes and the provenance.
    let schema = calls.schema();
    let index = |name: &str| schema.index_of(name).expect("calls has its schema's columns");
    let mut columns: Vec<ArrayRef> = calls.columns().to_vec();
    let scorecard = tables::scorecard_columns(assessed.iter().map(|(m, _, s)| (m, *s)));
    for (k, column) in scorecard.into_iter().enumerate() {
        columns[index("agent_talk_s") + k] = column;
    }
    let n = calls.num_rows();
    columns[index("pipeline_version")] =
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(schema::PIPELINE_VERSION, n)));
    columns[index("run_id")] = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(run_id, n)));
    columns[index("processed_at")] = Arc::new(
        TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(Utc::now().timestamp_micros(), n))
            .with_timezone("UTC"),
    );
    let new_calls = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| SinkError::Build { table: "calls".into(), reason: e.to_string() })?;

    // events: the new ones, plus the redactions and raised voices (they come from the
    // transcript and the audio, not from the rules).
    let rows: Vec<(&str, NaiveDate, &Event)> =
        (0..n).flat_map(|i| assessed[i].1.iter().map(move |e| (ids.value(i), date_value, e))).collect();
    let mut new_events = pq::without_column(tables::event_rows(rows)?, "call_date");
    if let Some((path, b)) = &events {
        let kinds = strings(b, "kind", path)?;
        let kept = [EventKind::Pii.as_str(), EventKind::RaisedVoice.as_str()];
        let keep: BooleanArray = kinds.iter().map(|k| Some(k.is_some_and(|k| kept.contains(&k)))).collect();
        let kept_rows =
            filter_record_batch(b, &keep).map_err(|e| SinkError::Read { path: path.clone(), reason: e.to_string() })?;
        new_events = concat_batches(&new_events.schema(), [&new_events, &kept_rows])
            .map_err(|e| SinkError::Build { table: "events".into(), reason: e.to_string() })?;
    }

    // Stored batches have no call_date column: it lives in the folder name.
    let commit_id = commit::commit_id(run_id, seq);
    let write = |table: &str, batch: &RecordBatch| {
        let path = out.join(table).join(format!("call_date={date}")).join(format!("part-{commit_id}.parquet"));
        pq::write_file(&path, batch)
    };
    for (table, batch) in [("utterances", utterances.map(|(_, b)| b)), ("speech", speech.map(|(_, b)| b))] {
        if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
            write(table, &batch)?;
        }
    }
    if new_events.num_rows() > 0 {
        write("events", &new_events)?;
    }
    write("calls", &new_calls)?;
    Ok(n)
}
