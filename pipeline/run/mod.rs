//! The batch: the only module that knows the order of the stages and who runs them.
//!
//! ```text
//! ingest ──► CPU pool (rayon): read + hash ─► skip? ─► decode ─► resample ─► speech activity
//!                 │   (admitted while the memory budget allows: [`budget`])
//!                 ▼ VoicedCall
//!            ASR jobs (one thread + one worker process each, [`crate::asr::process`]):
//!                 transcribe ─► metrics + rules
//!                 ▼ ScoredCall / CallFailure
//!            writer (this thread): commit every `run.commit_every` calls or
//!                 `run.commit_interval_s` seconds ([`crate::sinks::commit`]); failures table
//! ```
//! Before any call: the output lock ([`lock`]), recovery of what a killed run left, the
//! `runs` row. A failing call becomes a [`CallFailure`] (and a `failures` row) and the batch
//! goes on; only what dooms every call (missing input, a model that does not load, an output
//! that cannot be written, another run holding the output) is a [`RunError`].

pub mod budget;
pub mod cpu;
pub mod lease;
pub mod ledger;
pub mod lock;
pub mod shard;
pub mod stages;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::asr::process::WorkerProcess;
use crate::asr::AsrError;
use crate::config::Config;
use crate::ingest::{self, IngestError};
use crate::model;
use crate::record::{CallFailure, CallSource, ErrorType, ScoredCall, Stage, StageTimes, VoicedCall};
use crate::sinks::commit;
use crate::sinks::parquet::{Partitions, SinkError};
use crate::sinks::tables::{RowContext, RunRow, RunTotals};
use crate::storage::Storage;
use budget::{MemoryBudget, Reservation};
use ledger::{FailureTable, Ledger, Skip};

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
    #[error(transparent)]
    Locked(#[from] lock::LockError),
    #[error("output {path}: {reason}")]
    OutputDir { path: String, reason: String },
}

pub struct RunOptions {
    /// A folder or manifest, local or on an object store (`s3://...`).
    pub input: String,
    pub out: Storage,
    pub config: Config,
    /// GGML model; `None` = the registry default.
    pub model: Option<PathBuf>,
    /// ASR jobs: calls transcribed at once, each by its own worker process; `None` =
    /// [`cpu::default_jobs`] for where the first worker decodes.
    pub jobs: Option<usize>,
    /// Skip transcription: no model is loaded and no utterances are written.
    pub no_asr: bool,
    /// Process calls again even when `calls` already holds them with the same content.
    pub reprocess: bool,
    /// The callqa binary to start as ASR worker (`callqa worker`); `None` = this very executable.
    pub worker_exe: Option<PathBuf>,
    /// Write a copy of each processed recording here with its redacted time ranges muted.
    pub redacted_audio: Option<PathBuf>,
    /// Process only this shard's calls, beside the other shards' processes.
    pub shard: Option<shard::Shard>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Of the skipped: calls left alone after `run.max_attempts` failed runs.
    pub given_up: usize,
    pub audio_s: f64,
    pub wall_s: f64,
    pub commits: usize,
    #[serde(skip)]
    pub failures: Vec<CallFailure>,
    pub model: Option<String>,
    pub stage_s: StageTimes,
    /// Windows decoded again without DTW after their DTW pass killed a worker.
    pub dtw_fallbacks: usize,
    /// Worker processes started (one per job, plus one per crash).
    pub worker_starts: usize,
    /// ASR jobs the run used (`--jobs`, or [`cpu::default_jobs`]).
    pub jobs: usize,
    /// The GPU the workers decoded on; `None` = the CPU.
    pub gpu: Option<String>,
}

impl RunSummary {
    /// The one-line report printed at the end of a run.
    pub fn line(&self) -> String {
        let given_up = if self.given_up > 0 {
            format!(" ({} left after repeated failures: see the failures table)", self.given_up)
        } else {
            String::new()
        };
        format!(
            "calls: {} ok, {} failed, {} skipped{given_up}; audio {:.2} h in {:.1} s ({:.1}x real time); run {}",
            self.ok,
            self.failed,
            self.skipped,
            self.audio_s / 3600.0,
            self.wall_s,
            if self.wall_s > 0.0 { self.audio_s / self.wall_s } else { 0.0 },
            self.run_id
        )
    }

    /// 0 all good, 1 some calls failed in this run.
    pub fn exit_status(&self) -> u32 {
        u32::from(self.failed > 0)
    }
}

/// `<UTC start>-<hash>`, and `-<shard tag>` for a shard: every file a run writes is named by it.
pub(crate) fn new_run_id(started: DateTime<Utc>, shard: Option<&shard::Shard>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(started.to_rfc3339().as_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let digest = hasher.finalize();
    let id = format!(
        "{}-{:02x}{:02x}{:02x}{:02x}",
        started.format("%Y%m%dT%H%M%SZ"),
        digest[0],
        digest[1],
        digest[2],
        digest[3]
    );
    match shard {
        Some(s) => format!("{id}-{}", s.tag()),
        None => id,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

enum Outcome {
    Done(Box<ScoredCall>),
    Skipped { call_id: String, why: Skip },
    Failed(CallFailure),
}

/// What the CPU stages hand to the ASR jobs: a call, the memory it holds and its place in
/// the queue ahead of transcription.
struct Prepared {
    call: VoicedCall,
    _memory: Reservation,
    _slot: Reservation,
}

fn check_output_dir(out: &Storage, run_id: &str) -> Result<(), RunError> {
    let fail = |reason: String| RunError::OutputDir { path: out.describe(""), reason };
    let probe = format!(".callqa-write-probe-{run_id}");
    out.write(&probe, Vec::new()).map_err(|e| fail(format!("not writable: {e}")))?;
    out.remove(&probe).map_err(|e| fail(e.to_string()))
}

/// Memory a call may need between reading and transcription, from its file size: the bytes,
/// the decoded samples (up to 4x for 8-bit) and the 16 kHz copies (up to 8x from 8 kHz
/// 8-bit); after decoding the reservation shrinks to the 16 kHz audio actually held.
fn memory_estimate(source: &CallSource) -> usize {
    (file_size(source) as usize).saturating_mul(13)
}

/// Order a batch longest call first (by file size; equal sizes keep input order), so the
/// batch ends on short calls: a job that runs out of calls idles only while the others finish
/// a short one, not the longest of the batch.
fn longest_first(sources: &mut [CallSource]) {
    sources.sort_by_cached_key(|source| std::cmp::Reverse(file_size(source)));
}

fn file_size(source: &CallSource) -> u64 {
    source.size_bytes.or_else(|| std::fs::metadata(&source.path).ok().map(|m| m.len())).unwrap_or(0)
}

/// Run the batch. `on_progress(done, total)` is called from the writing thread.
pub fn run(options: &RunOptions, on_progress: &dyn Fn(usize, usize)) -> Result<RunSummary, RunError> {
    let wall = Instant::now();
    let started = Utc::now();
    let shard = options.shard.as_ref();
    let scope = commit::Scope { shard };
    let run_id = new_run_id(started, shard);
    let out = &options.out;
    let config = &options.config;
    config.privacy.output_access.apply();
    if !config.privacy.redact {
        warn!("privacy.redact is off: transcripts are stored verbatim, phone, ID and card numbers included");
    }
    if let Some(dir) = out.local_root() {
        std::fs::create_dir_all(dir)
            .map_err(|e| RunError::OutputDir { path: out.describe(""), reason: e.to_string() })?;
    }
    let holder = lock::Holder::this_process(&run_id, started);
    let _lock = match shard {
        Some(s) => lock::OutputLock::acquire_shard(out, &holder, &s.tag())?,
        None => lock::OutputLock::acquire(out, &holder)?,
    };
    // Under the lock, so recovery never meets another run's probe (a shard's names its run).
    check_output_dir(out, &run_id)?;
    let mut discovered = ingest::discover_input(&options.input)?;
    if let Some(s) = shard {
        discovered.retain(|entry| match entry {
            Ok(source) => s.owns(&source.call_id),
            Err(rejected) => s.owns(&rejected.call_id),
        });
        info!(shard = %s, calls = discovered.len(), "this shard's calls");
    }
    // The partitions this run writes: the only ones its skip check and recovery read.
    let input_dates = Partitions::Dates(
        discovered.iter().flatten().map(|source| source.call_date.format("%Y-%m-%d").to_string()).collect(),
    );
    let (recovered, versions, failure_rows) = {
        let _rewriting = shard.map(|_| lock::rewrite_lock(out)).transpose()?;
        let (recovered, versions) = commit::recover(out, scope, &input_dates)?;
        (recovered, versions, commit::adopt_failures(out, scope)?)
    };
    if recovered != commit::Recovered::default() {
        info!(?recovered, "recovered the output after an interrupted run");
    }
    if let Partitions::Dates(dates) = &input_dates {
        commit::mark_open(out, &run_id, dates)?;
    }

    let model_path = if options.no_asr { None } else { Some(model::registry::resolve(options.model.as_deref())?) };
    let model_name = model_path.as_deref().map(crate::asr::model_name);
    // /proc/self/exe is this very binary even if the file on disk is replaced (an upgrade
    // during a night's run), so a restarted worker always matches its supervisor.
    let worker_exe = options.worker_exe.clone().unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    // The first worker starts now, so a model that does not load stops the run before any call.
    let mut first_worker = match &model_path {
        Some(path) => {
            info!(model = %path.display(), "starting the transcription worker");
            let mut worker = WorkerProcess::new(worker_exe.clone(), path.clone(), config.asr.clone());
            worker.ensure_started()?;
            Some(worker)
        }
        None => None,
    };

    if failure_rows.is_empty() {
        // The table exists from the first run on, so a query over it never meets a missing folder.
        commit::write_failures(out, shard, &failure_rows)?;
    }
    let ledger =
        Ledger::new(versions, failure_rows.clone(), model_name.clone(), options.reprocess, config.run.max_attempts);
    let mut failure_table = FailureTable::new(failure_rows);
    let mut run_row = RunRow::start(&holder, started, config, model_name.clone());
    run_row.shard = shard.map(|s| s.to_string());
    commit::write_run(out, &run_row)?;

    let mut summary = RunSummary { run_id: run_id.clone(), model: model_name.clone(), ..Default::default() };
    let mut failures_changed = false;
    let mut sources = Vec::new();
    for entry in discovered {
        match entry {
            Ok(source) => sources.push(source),
            Err(rejected) if ledger.given_up(&rejected.call_id, None) => {
                summary.skipped += 1;
                summary.given_up += 1;
            }
            Err(rejected) => {
                let failure = CallFailure {
                    call_id: rejected.call_id,
                    path: rejected.path,
                    content_sha256: None,
                    stage: Stage::Ingest,
                    error_type: rejected.error_type,
                    reason: rejected.reason,
                };
                failure_table.record(&failure, &run_id, Utc::now());
                failures_changed = true;
                summary.failures.push(failure);
            }
        }
    }
    longest_first(&mut sources);
    let total = sources.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gpu = first_worker.as_ref().and_then(WorkerProcess::gpu).map(str::to_owned);
    let jobs = options.jobs.unwrap_or_else(|| cpu::default_jobs(gpu.is_some(), cores)).clamp(1, total.max(1));
    let max_threads = match config.asr.threads {
        0 => (cores / jobs).max(1) as u32,
        n => n,
    };
    let cpu_share = if config.asr.adapt_threads {
        cpu::CpuShare::new(cores, jobs, max_threads)
    } else {
        cpu::CpuShare::fixed(max_threads)
    };
    info!(calls = total, jobs, max_threads, cores, gpu = gpu.as_deref().unwrap_or("none"), "processing");
    (summary.jobs, summary.gpu) = (jobs, gpu);

    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(cores).thread_name(|i| format!("callqa-cpu-{i}")).build().map_err(
            |e| RunError::OutputDir { path: out.describe(""), reason: format!("cannot start threads: {e}") },
        )?;
    let budget = MemoryBudget::new(config.run.max_in_flight_mb << 20);
    // Calls decoded ahead of transcription: enough to keep every job fed, few enough that
    // memory does not grow with the length of the batch.
    let queue_slots = MemoryBudget::new(2 * jobs + cores);
    let max_bytes = stages::max_file_bytes(config);
    let stop = AtomicBool::new(false);
    let (voiced_tx, voiced_rx) = crossbeam_channel::unbounded::<Prepared>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Outcome>();
    let mut workers: Vec<Option<WorkerProcess>> = (0..jobs)
        .map(|_| {
            first_worker.take().or_else(|| {
                model_path.as_ref().map(|path| WorkerProcess::new(worker_exe.clone(), path.clone(), config.asr.clone()))
            })
        })
        .collect();

    let mut pending: Vec<ScoredCall> = Vec::new();
    let mut commit_seq = 0u32;
    let mut fatal: Option<RunError> = None;
    let table = &mut failure_table;
    std::thread::scope(|scope| {
        let (sources, budget, queue_slots, stop, pool, ledger) =
            (&sources, &budget, &queue_slots, &stop, &pool, &ledger);
        // The CPU pool finishes calls in any order; they reach the ASR jobs in queue order,
        // so a batch is transcribed the same way every time (a whisper state's output depends
        // on what it decoded before: temperature fallback draws from its random numbers).
        let (prepared_tx, prepared_rx) = crossbeam_channel::unbounded::<(usize, Option<Prepared>)>();
        scope.spawn(move || {
            let mut parked = BTreeMap::new();
            let mut next = 0;
            for (index, prepared) in prepared_rx {
                parked.insert(index, prepared);
                while let Some(prepared) = parked.remove(&next) {
                    next += 1;
                    if let Some(prepared) = prepared {
                        let _ = voiced_tx.send(prepared);
                    }
                }
            }
        });
        let feeder_done = done_tx.clone();
        scope.spawn(move || {
            pool.in_place_scope(|tasks| {
                for (index, source) in sources.iter().enumerate() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let slot = queue_slots.acquire(1);
                    let mut memory = budget.acquire(memory_estimate(source));
                    let (prepared_tx, done_tx) = (prepared_tx.clone(), feeder_done.clone());
                    tasks.spawn(move |_| {
                        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            prepare(source, ledger, config, max_bytes)
                        }))
                        .unwrap_or_else(|payload| Err(Outcome::Failed(panic_failure(source, None, payload))));
                        let prepared = match outcome {
                            Ok(call) => {
                                memory.shrink_to(call.audio_bytes());
                                Some(Prepared { call, _memory: memory, _slot: slot })
                            }
                            Err(outcome) => {
                                let _ = done_tx.send(outcome);
                                None
                            }
                        };
                        let _ = prepared_tx.send((index, prepared));
                    });
                }
            });
        });
        for worker in workers.iter_mut() {
            let (voiced_rx, done_tx, cpu_share) = (voiced_rx.clone(), done_tx.clone(), &cpu_share);
            let model_name = model_name.as_deref();
            scope.spawn(move || {
                // Load the model now, while the first calls are prepared, rather than beside
                // the other jobs' first windows. A worker that does not start here is tried
                // again by the call it was meant for, which then fails with the reason.
                if let Some(Err(e)) = worker.as_mut().map(WorkerProcess::ensure_started) {
                    debug!(error = %e, "a transcription worker did not start");
                }
                for prepared in voiced_rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = transcribe_and_score(
                        prepared,
                        worker.as_mut(),
                        model_name,
                        config,
                        options.redacted_audio.as_deref(),
                        cpu_share,
                    );
                    if done_tx.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        // Once the jobs are gone (done, or stopped), calls still queued for them are dropped
        // and their memory released, so the feeder never waits for room that cannot come.
        drop(voiced_rx);
        drop(done_tx);

        // The writer: this thread.
        let interval = Duration::from_secs_f64(config.run.commit_interval_s);
        let mut last_commit = Instant::now();
        let mut done = 0;
        let mut commit_now = |pending: &mut Vec<ScoredCall>,
                              table: &mut FailureTable,
                              failures_changed: &mut bool,
                              summary: &mut RunSummary|
         -> Result<(), RunError> {
            if !pending.is_empty() {
                let clock = Instant::now();
                commit_seq += 1;
                let ctx = RowContext { run_id: &run_id, processed_at: Utc::now() };
                commit::commit(out, &commit::commit_id(&run_id, commit_seq), pending.as_mut_slice(), &ctx)?;
                for call in pending.drain(..) {
                    *failures_changed |= table.clear(&call.call.source.call_id);
                }
                summary.commits += 1;
                summary.stage_s.write += clock.elapsed().as_secs_f64();
                debug!(commit = commit_seq, "committed");
            }
            if std::mem::take(failures_changed) {
                commit::write_failures(out, shard, table.rows())?;
            }
            Ok(())
        };
        loop {
            let wait = interval.saturating_sub(last_commit.elapsed());
            match done_rx.recv_timeout(wait) {
                Ok(outcome) => {
                    done += 1;
                    match outcome {
                        Outcome::Done(call) => {
                            summary.stage_s.add(&call.call.timings);
                            summary.ok += 1;
                            summary.audio_s += call.call.facts.duration_s;
                            pending.push(*call);
                        }
                        Outcome::Skipped { call_id, why } => {
                            summary.skipped += 1;
                            match why {
                                Skip::GivenUp => summary.given_up += 1,
                                Skip::Done | Skip::HasTranscript => failures_changed |= table.clear(&call_id),
                            }
                        }
                        Outcome::Failed(failure) => {
                            warn!(call_id = %failure.call_id, stage = %failure.stage, error = %failure.reason, "call failed");
                            table.record(&failure, &run_id, Utc::now());
                            failures_changed = true;
                            summary.failures.push(failure);
                        }
                    }
                    on_progress(done, total);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if pending.len() >= config.run.commit_every || last_commit.elapsed() >= interval {
                if let Err(e) = commit_now(&mut pending, table, &mut failures_changed, &mut summary) {
                    fatal = Some(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                last_commit = Instant::now();
            }
        }
        if fatal.is_none() {
            if let Err(e) = commit_now(&mut pending, table, &mut failures_changed, &mut summary) {
                fatal = Some(e);
            }
        }
        // Unblock the other threads if the writer stopped early.
        drop(done_rx);
    });
    for worker in workers.iter().flatten() {
        summary.worker_starts += worker.starts;
        summary.dtw_fallbacks += worker.dtw_fallbacks;
    }
    summary.failed = summary.failures.len();
    let finish = |summary: &RunSummary, run_row: &mut RunRow, exit_status: u32| {
        run_row.finished = Some(RunTotals {
            finished_at: Utc::now(),
            ok: summary.ok as u32,
            failed: summary.failed as u32,
            skipped: summary.skipped as u32,
            audio_s: summary.audio_s,
            wall_s: wall.elapsed().as_secs_f64(),
            exit_status,
        });
        commit::write_run(out, run_row)
    };
    if let Some(e) = fatal {
        // Best effort: the output may be what failed.
        let _ = finish(&summary, &mut run_row, 2);
        return Err(e);
    }
    // Only now that the new rows are in place: older versions of calls processed again go.
    let (cleaned, _) = {
        let _rewriting = shard.map(|_| lock::rewrite_lock(out)).transpose()?;
        commit::recover(out, scope, &input_dates)?
    };
    if cleaned.superseded_calls > 0 {
        info!(calls = cleaned.superseded_calls, "replaced the rows of calls processed again");
    }
    summary.wall_s = wall.elapsed().as_secs_f64();
    finish(&summary, &mut run_row, summary.exit_status())?;
    Ok(summary)
}

fn panic_failure(
    source: &CallSource,
    content_sha256: Option<String>,
    payload: Box<dyn std::any::Any + Send>,
) -> CallFailure {
    CallFailure {
        call_id: source.call_id.clone(),
        path: source.path.clone(),
        content_sha256,
        stage: Stage::Internal,
        error_type: ErrorType::Panic,
        reason: format!("panic: {}", panic_message(payload)),
    }
}

/// The CPU stages of one call: read, hash, decide, decode, resample, speech activity.
fn prepare(source: &CallSource, ledger: &Ledger, config: &Config, max_bytes: u64) -> Result<VoicedCall, Outcome> {
    let clock = Instant::now();
    let (bytes, sha) = match stages::read(source, max_bytes) {
        Ok(read) => read,
        Err(_) if ledger.given_up(&source.call_id, None) => {
            return Err(Outcome::Skipped { call_id: source.call_id.clone(), why: Skip::GivenUp })
        }
        Err(failure) => return Err(Outcome::Failed(failure)),
    };
    if let Some(why) = ledger.decide(&source.call_id, &sha) {
        return Err(Outcome::Skipped { call_id: source.call_id.clone(), why });
    }
    let read_s = clock.elapsed().as_secs_f64();
    let mut call = stages::voice(source, bytes, sha, config).map_err(Outcome::Failed)?;
    call.timings.read = read_s;
    Ok(call)
}

/// The stages after the CPU pool: transcription in the job's worker process, then scoring.
fn transcribe_and_score(
    prepared: Prepared,
    worker: Option<&mut WorkerProcess>,
    model_name: Option<&str>,
    config: &Config,
    muted_audio_dir: Option<&std::path::Path>,
    cpu_share: &cpu::CpuShare,
) -> Outcome {
    let source = prepared.call.source.clone();
    let sha = prepared.call.content_sha256.clone();
    let duration_s = prepared.call.facts.duration_s;
    let threads = || cpu_share.threads();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let asr = worker.map(|worker| {
            worker.set_budget(Some((duration_s * config.asr.time_budget_x_audio).max(config.asr.min_time_budget_s)));
            debug!(call_id = %source.call_id, "transcribing");
            stages::Asr {
                decoder: worker,
                settings: &config.asr,
                model_name: model_name.unwrap_or("whisper"),
                threads: &threads,
            }
        });
        let Prepared { call, .. } = prepared;
        stages::transcribe(call, asr)
            .and_then(|call| stages::redact(stages::score(call, config), &config.privacy, muted_audio_dir))
    }));
    match result {
        Ok(Ok(scored)) => Outcome::Done(Box::new(scored)),
        Ok(Err(failure)) => Outcome::Failed(failure),
        Err(payload) => Outcome::Failed(panic_failure(&source, Some(sha), payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_runs_longest_call_first_and_keeps_input_order_among_equals() {
        let source = |call_id: &str, size: u64| CallSource {
            size_bytes: Some(size),
            ..ScoredCall::of_utterances(call_id, Vec::new()).call.source
        };
        let mut sources = vec![source("a", 10), source("b", 30), source("c", 10), source("d", 20), source("e", 30)];
        longest_first(&mut sources);
        let order: Vec<&str> = sources.iter().map(|s| s.call_id.as_str()).collect();
        assert_eq!(order, ["b", "e", "d", "a", "c"]);
    }
}
