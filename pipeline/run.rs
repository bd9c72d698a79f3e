//! The batch: the only module that knows the order of the stages.
//!
//! ingest -> (per call, on `jobs` workers) read -> decode -> resample -> speech activity ->
//! transcription -> rows -> (once) Parquet tables. A failing call becomes a [`CallFailure`]
//! with its stage and reason and the batch goes on; a panic inside a call is caught and
//! reported the same way. Only what dooms every call (missing input, unloadable model,
//! unwritable output) is a [`RunError`].

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tracing::{debug, info, info_span};

use crate::asr::filter::DropCounts;
use crate::asr::{AsrError, AsrWorker, Transcriber};
use crate::config::Config;
use crate::ingest::{self, IngestError};
use crate::metrics::{self, CallMetrics};
use crate::record::{CallSource, Event, EventKind, Speaker, SpeechInterval, Utterance};
use crate::sinks::parquet::SinkError;
use crate::sinks::{self, tables};
use crate::{audio, model, rules, vad};

/// Where a call failed: a fixed vocabulary for logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Read,
    Decode,
    Resample,
    Transcribe,
    Internal,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Ingest => "ingest",
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Resample => "resample",
            Stage::Transcribe => "transcribe",
            Stage::Internal => "internal",
        })
    }
}

/// One call that could not be processed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({}): {stage}: {reason}", call_id, path.display())]
pub struct CallFailure {
    pub call_id: String,
    pub path: PathBuf,
    pub stage: Stage,
    pub reason: String,
}

/// What dooms the whole run; checked before any call is processed where possible.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Model(#[from] model::registry::ModelNotFound),
    #[error(transparent)]
    Asr(#[from] AsrError),
    #[error(transparent)]
    Output(#[from] SinkError),
    #[error("output folder {}: {reason}", path.display())]
    OutputDir { path: PathBuf, reason: String },
}

pub struct RunOptions {
    pub input: PathBuf,
    pub out_dir: PathBuf,
    pub config: Config,
    /// GGML model; `None` = the registry default.
    pub model: Option<PathBuf>,
    pub jobs: usize,
    /// Skip transcription: no model is loaded and no utterances are written.
    pub no_asr: bool,
    /// Process calls again even when `calls` already holds them with the same content.
    pub reprocess: bool,
}

/// A call that went through every stage.
#[derive(Debug, Clone)]
pub struct ProcessedCall {
    pub source: CallSource,
    pub content_sha256: String,
    pub duration_s: f64,
    pub sample_rate_hz: u32,
    pub channels: usize,
    pub codec: &'static str,
    pub language: Option<String>,
    pub speech: Vec<(Speaker, Vec<SpeechInterval>)>,
    pub utterances: Vec<Utterance>,
    pub dropped: DropCounts,
    pub metrics: CallMetrics,
    pub events: Vec<Event>,
    /// The scorecard; `None` when nothing was transcribed (phrase rules need words).
    pub scores: Option<Scores>,
    /// Seconds spent in each stage on this call.
    pub timings: StageTimes,
}

/// Seconds per stage, summed over calls (and `write` once per run).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    pub decode: f64,
    pub resample: f64,
    pub vad: f64,
    pub asr: f64,
    pub metrics_rules: f64,
    pub write: f64,
}

impl StageTimes {
    fn add(&mut self, other: &StageTimes) {
        self.decode += other.decode;
        self.resample += other.resample;
        self.vad += other.vad;
        self.asr += other.asr;
        self.metrics_rules += other.metrics_rules;
        self.write += other.write;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub forbidden_hits: u32,
    pub required_missing: u32,
    pub qa_score: f64,
}

enum Outcome {
    Done(Box<ProcessedCall>),
    Skipped,
    Failed(CallFailure),
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub audio_s: f64,
    pub wall_s: f64,
    #[serde(skip)]
    pub failures: Vec<CallFailure>,
    pub files: Vec<PathBuf>,
    pub model: Option<String>,
    pub stage_s: StageTimes,
}

impl RunSummary {
    /// The one-line report printed at the end of a run.
    pub fn line(&self) -> String {
        format!(
            "calls: {} ok, {} failed, {} skipped; audio {:.2} h in {:.1} s ({:.1}x real time); run {}",
            self.ok,
            self.failed,
            self.skipped,
            self.audio_s / 3600.0,
            self.wall_s,
            if self.wall_s > 0.0 { self.audio_s / self.wall_s } else { 0.0 },
            self.run_id
        )
    }
}

fn new_run_id(started: chrono::DateTime<chrono::Utc>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(started.to_rfc3339().as_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let digest = hasher.finalize();
    format!("{}-{:02x}{:02x}{:02x}{:02x}", started.format("%Y%m%dT%H%M%SZ"), digest[0], digest[1], digest[2], digest[3])
}

fn check_output_dir(out: &Path) -> Result<(), RunError> {
    let fail = |reason: String| RunError::OutputDir { path: out.to_path_buf(), reason };
    std::fs::create_dir_all(out).map_err(|e| fail(e.to_string()))?;
    let probe = out.join(".callqa-write-probe");
    std::fs::write(&probe, b"").map_err(|e| fail(format!("not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(e.to_string()))
}

/// Process one call's bytes through every stage (no file system access).
/// `content_sha256` is the hex SHA-256 of `bytes`.
pub fn process_call(
    source: &CallSource,
    bytes: &[u8],
    content_sha256: String,
    config: &Config,
    asr: Option<&mut AsrWorker<'_>>,
) -> Result<ProcessedCall, (Stage, String)> {
    let mut timings = StageTimes::default();
    let clock = Instant::now();
    let decoded =
        audio::decode::decode_wav(bytes, config.decode.max_duration_s).map_err(|e| (Stage::Decode, e.to_string()))?;
    let agent_channel = source.agent_channel.unwrap_or(config.channels.agent_channel);
    timings.decode = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let channels = audio::to_speaker_channels(&decoded, agent_channel).map_err(|e| (Stage::Resample, e.to_string()))?;
    timings.resample = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let channel_audio: Vec<&[f32]> = channels.iter().map(|c| c.samples_16k.as_slice()).collect();
    let speech: Vec<(Speaker, Vec<SpeechInterval>)> =
        channels.iter().map(|c| c.speaker).zip(vad::detect_call(&channel_audio, &config.vad)).collect();
    let mut utterances = Vec::new();
    let mut dropped = DropCounts::default();
    let mut language = None;
    timings.vad = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    if let Some(worker) = asr {
        let mut seconds_by_language: Vec<(String, f64)> = Vec::new();
        for (channel, (_, intervals)) in channels.iter().zip(&speech) {
            let transcript = worker
                .transcribe(channel.speaker, &channel.samples_16k, intervals)
                .map_err(|e| (Stage::Transcribe, e.to_string()))?;
            utterances.extend(transcript.utterances);
            dropped.add(transcript.dropped);
            for (lang, seconds) in transcript.languages {
                match seconds_by_language.iter_mut().find(|(l, _)| *l == lang) {
                    Some((_, s)) => *s += seconds,
                    None => seconds_by_language.push((lang, seconds)),
                }
            }
        }
        utterances.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        language = match config.asr.language.as_str() {
            "auto" => seconds_by_language.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(l, _)| l),
            configured => Some(configured.to_string()),
        };
    }
    timings.asr = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let (metrics, mut events) = metrics::compute(&speech, &utterances, language.as_deref(), &config.metric_settings());
    let scores = language.as_deref().map(|language| {
        let call =
            rules::CallText { utterances: &utterances, speech: &speech, duration_s: decoded.duration_s(), language };
        let phrase_events = rules::evaluate(&config.phrases, &config.matching, &call);
        let count = |kind: EventKind| phrase_events.iter().filter(|e| e.kind == kind).count() as u32;
        let (forbidden_hits, required_missing) =
            (count(EventKind::ForbiddenPhrase), count(EventKind::RequiredPhraseMissing));
        let deductions = rules::scorecard::metric_deductions(&metrics, &events, &config.scorecard);
        events.extend(phrase_events);
        events.extend(deductions);
        Scores { forbidden_hits, required_missing, qa_score: rules::scorecard::qa_score(&events) }
    });
    events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.kind.cmp(&b.kind)));
    timings.metrics_rules = clock.elapsed().as_secs_f64();
    Ok(ProcessedCall {
        source: source.clone(),
        content_sha256,
        duration_s: decoded.duration_s(),
        sample_rate_hz: decoded.sample_rate_hz,
        channels: decoded.channels.len(),
        codec: decoded.codec,
        language,
        speech,
        utterances,
        dropped,
        metrics,
        events,
        scores,
        timings,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Run the batch. `on_progress(done, total)` is called from the collecting thread.
pub fn run(options: &RunOptions, on_progress: &dyn Fn(usize, usize)) -> Result<RunSummary, RunError> {
    let wall = Instant::now();
    let started = chrono::Utc::now();
    let run_id = new_run_id(started);
    check_output_dir(&options.out_dir)?;
    let discovered = ingest::discover(&options.input)?;
    let transcriber = if options.no_asr {
        None
    } else {
        let path = model::registry::resolve(options.model.as_deref())?;
        info!(model = %path.display(), "loading Whisper model");
        Some(Transcriber::load(&path, options.config.asr.clone())?)
    };
    let mut versions = sinks::parquet::call_versions(&options.out_dir)?;
    let already: HashSet<(String, String)> = if options.reprocess {
        HashSet::new()
    } else {
        versions.iter().map(|v| (v.call_id.clone(), v.content_sha256.clone())).collect()
    };

    let mut summary = RunSummary {
        run_id: run_id.clone(),
        model: transcriber.as_ref().map(|t| t.model_name.clone()),
        ..Default::default()
    };
    let mut sources = Vec::new();
    for entry in discovered {
        match entry {
            Ok(source) => sources.push(source),
            Err(rejected) => summary.failures.push(CallFailure {
                call_id: rejected.call_id,
                path: rejected.path,
                stage: Stage::Ingest,
                reason: rejected.reason,
            }),
        }
    }
    let total = sources.len();
    let jobs = options.jobs.max(1).min(total.max(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads_per_worker = match options.config.asr.threads {
        0 => (cores / jobs).max(1) as u32,
        n => n,
    };
    info!(calls = total, jobs, threads_per_worker, "processing");

    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel::<Outcome>();
    let worker_error: Mutex<Option<AsrError>> = Mutex::new(None);
    let mut processed: Vec<ProcessedCall> = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let sender = sender.clone();
            let (sources, next, transcriber, worker_error, already) =
                (&sources, &next, &transcriber, &worker_error, &already);
            scope.spawn(move || {
                let mut worker = match transcriber.as_ref().map(|t| t.worker(threads_per_worker)).transpose() {
                    Ok(w) => w,
                    Err(e) => {
                        *worker_error.lock().unwrap() = Some(e);
                        return;
                    }
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = sources.get(index) else {
                        break;
                    };
                    let outcome = handle_call(source, options, already, worker.as_mut());
                    if sender.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut done = 0;
        for outcome in receiver {
            done += 1;
            match outcome {
                Outcome::Done(call) => {
                    summary.stage_s.add(&call.timings);
                    summary.ok += 1;
                    summary.audio_s += call.duration_s;
                    processed.push(*call);
                }
                Outcome::Skipped => summary.skipped += 1,
                Outcome::Failed(failure) => {
                    debug!(call_id = %failure.call_id, stage = %failure.stage, error = %failure.reason, "call failed");
                    summary.failures.push(failure);
                }
            }
            on_progress(done, total);
        }
    });
    if let Some(e) = worker_error.into_inner().unwrap() {
        return Err(e.into());
    }
    summary.failed = summary.failures.len();
    processed.sort_by(|a, b| a.source.call_id.cmp(&b.source.call_id));
    let processed_at = chrono::Utc::now();
    let context = tables::RowContext { run_id: &run_id, processed_at, model: summary.model.as_deref() };
    let write_clock = Instant::now();
    let days: Vec<i32> = processed.iter().map(|c| sinks::parquet::date_to_days(c.source.call_date)).collect();
    let mut written_tables = Vec::new();
    for (table, batch) in tables::build_all(&processed, &context)? {
        summary.files.extend(sinks::parquet::write_partitioned(&options.out_dir, table, &run_id, &batch, &days)?);
        written_tables.push(table);
    }
    // Only now that the new rows are in place: the older versions of the calls just processed go.
    versions.extend(processed.iter().map(|c| sinks::parquet::CallVersion {
        call_id: c.source.call_id.clone(),
        content_sha256: c.content_sha256.clone(),
        run_id: run_id.clone(),
        processed_at: processed_at.timestamp_micros(),
    }));
    let superseded = sinks::parquet::drop_superseded(&options.out_dir, &written_tables, &versions)?;
    if superseded > 0 {
        info!(calls = superseded, "replaced the rows of calls processed again");
    }
    summary.stage_s.write = write_clock.elapsed().as_secs_f64();
    summary.wall_s = wall.elapsed().as_secs_f64();
    Ok(summary)
}

fn handle_call(
    source: &CallSource,
    options: &RunOptions,
    already: &HashSet<(String, String)>,
    worker: Option<&mut AsrWorker<'_>>,
) -> Outcome {
    let span = info_span!("call", call_id = %source.call_id);
    let _enter = span.enter();
    let fail = |stage: Stage, reason: String| {
        Outcome::Failed(CallFailure { call_id: source.call_id.clone(), path: source.path.clone(), stage, reason })
    };
    // Refuse before reading what could not be a plausible recording: the longest allowed
    // duration at 48 kHz, two channels, 32-bit samples, plus headers.
    let max_bytes = (options.config.decode.max_duration_s * 48_000.0 * 2.0 * 4.0) as u64 + (1 << 20);
    match std::fs::metadata(&source.path) {
        Ok(m) if m.len() > max_bytes => {
            return fail(
                Stage::Read,
                format!("{} bytes is larger than any recording within decode.max_duration_s", m.len()),
            )
        }
        Err(e) => return fail(Stage::Read, e.to_string()),
        Ok(_) => {}
    }
    let bytes = match std::fs::read(&source.path) {
        Ok(b) => b,
        Err(e) => return fail(Stage::Read, e.to_string()),
    };
    let content_sha256 = hex(&Sha256::digest(&bytes));
    if already.contains(&(source.call_id.clone(), content_sha256.clone())) {
        return Outcome::Skipped;
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        process_call(source, &bytes, content_sha256, &options.config, worker)
    }));
    match result {
        Ok(Ok(call)) => Outcome::Done(Box::new(call)),
        Ok(Err((stage, reason))) => fail(stage, reason),
        Err(payload) => fail(Stage::Internal, format!("panic: {}", panic_message(payload))),
    }
}
