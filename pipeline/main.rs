//! The `callqa` command line: parse arguments, run one command, map the outcome to an exit code
//! (0 all good, 1 finished with failed calls, 2 fatal).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use callqa::config::Config;
use callqa::model::{self, WeightType};
use callqa::run::RunOptions;
use callqa::sampling::SampleSettings;

#[derive(Parser)]
#[command(name = "callqa", version, about = "Call-centre QA analytics: call recordings in, Parquet tables out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process a folder of call recordings (or a CSV manifest) into Parquet tables.
    Run {
        /// Folder searched recursively for .wav, or a CSV manifest (header row; `path` required);
        /// or the same on an object store: s3://bucket/prefix, s3://bucket/calls.csv (gs://, az://).
        #[arg(long)]
        input: String,
        /// Output folder or object-store prefix (s3://bucket/prefix, gs://, az://); each table
        /// goes to OUT/<table>/call_date=YYYY-MM-DD/. Credentials, region and endpoint come from
        /// the store's standard environment variables (AWS_ENDPOINT_URL for an S3-compatible one).
        #[arg(long)]
        out: String,
        /// TOML configuration (see `callqa config`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// GGML Whisper model (default: the registry default under models/).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Calls transcribed in parallel, each by its own worker process and Whisper state
        /// (default: 1 on a CPU; on a GPU half the cores, up to 8).
        #[arg(long)]
        jobs: Option<usize>,
        /// Acoustic metrics only: no model is loaded and no utterances are written.
        #[arg(long)]
        no_asr: bool,
        /// Process calls again even if OUT already holds them with identical audio.
        #[arg(long)]
        reprocess: bool,
        /// Also write the run summary (counts, audio and wall seconds, seconds per stage) as JSON.
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Commit after this many finished calls (overrides run.commit_every).
        #[arg(long)]
        commit_every: Option<usize>,
        /// ... or after this many seconds (overrides run.commit_interval_s).
        #[arg(long)]
        commit_interval_s: Option<f64>,
        /// Runs that may try a failing call before it is left alone (overrides run.max_attempts).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Store transcripts verbatim, phone, ID and card numbers included (privacy.redact =
        /// false). Only for tables nobody but the data owner can read.
        #[arg(long)]
        keep_pii: bool,
        /// Also write each processed recording to DIR/call_date=YYYY-MM-DD/<call_id>.wav with
        /// the redacted time ranges muted, for reviewers to listen to.
        #[arg(long, value_name = "DIR", conflicts_with = "keep_pii")]
        redacted_audio: Option<PathBuf>,
        /// Process only shard K (from 0) of N, beside the other shards' processes on the same
        /// OUT. Without it the shard comes from the scheduler: JOB_COMPLETION_INDEX (Kubernetes
        /// Indexed Job; N from --shards or CALLQA_SHARDS) or SLURM_ARRAY_TASK_ID/_COUNT/_MIN.
        #[arg(long, value_name = "K/N")]
        shard: Option<String>,
        /// The number of shards N when JOB_COMPLETION_INDEX gives only K.
        #[arg(long, value_name = "N")]
        shards: Option<u32>,
    },
    /// Internal: the transcription worker process `callqa run` starts and talks to over pipes.
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        model: PathBuf,
    },
    /// Build a test call from clips and a TOML spec, with its ground truth (WAV + .truth.json).
    Assemble {
        #[arg(long)]
        spec: PathBuf,
        /// Folder the spec's clip paths are relative to (default: the spec's folder).
        #[arg(long)]
        clips: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw (or extend) a month's sample of calls for human review: writes OUT/samples.
    Sample {
        /// The output folder of `callqa run`.
        #[arg(long)]
        out: PathBuf,
        /// YYYY-MM
        #[arg(long)]
        month: String,
        /// Share of the month's calls to select at least.
        #[arg(long, default_value_t = 0.05)]
        rate: f64,
        /// Calls every agent gets at least (or all of theirs).
        #[arg(long, default_value_t = 8)]
        min_per_agent: usize,
        /// Inclusion probability of calls the pipeline flagged.
        #[arg(long, default_value_t = 0.5)]
        risk_inclusion: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// TOML configuration: [scorecard] thresholds flag risky calls; [privacy] output_access
        /// applies to the files written.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Score stored calls again under a new config (phrase rules, metric settings,
    /// scorecard) from their stored utterances and speech intervals, without audio or a
    /// model; replaces their events and scores.
    Rescore {
        /// The output folder of `callqa run`.
        #[arg(long)]
        out: PathBuf,
        /// TOML configuration with the new rules and thresholds.
        #[arg(long)]
        config: PathBuf,
        /// Calls of this month (YYYY-MM) ...
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present_all = ["from", "to"])]
        month: Option<String>,
        /// ... or of these call dates (YYYY-MM-DD, both included).
        #[arg(long, requires = "to")]
        from: Option<chrono::NaiveDate>,
        #[arg(long, requires = "from")]
        to: Option<chrono::NaiveDate>,
    },
    /// Merge each call_date partition's part files into one file per table, sorted by call_id
    /// and start_s, dropping superseded call versions and empty files. Safe beside running
    /// shards; a reader sees each partition's old files or the merged one, never both.
    Compact {
        /// An output folder or object-store prefix of `callqa run`.
        #[arg(long)]
        out: String,
        /// Only partitions where this table has more than one file (repeatable; calls,
        /// utterances, speech or events). The call tables commit together, so a picked
        /// partition is compacted in all four.
        #[arg(long)]
        table: Vec<String>,
        /// Only call dates before this one (YYYY-MM-DD; default: today, UTC).
        #[arg(long)]
        before: Option<chrono::NaiveDate>,
    },
    /// Write a month's agent_month, rule_agreement and evaluations tables and HTML report
    /// (OUT/reports/qa-YYYY-MM.html).
    Report {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        month: String,
        /// Seed used if the month has no sample yet.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// TOML configuration: [scorecard] thresholds flag risky calls; [privacy] output_access
        /// applies to the files written.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The muted copies written by `callqa run --redacted-audio DIR`: the report plays
        /// those where they exist instead of the recordings.
        #[arg(long)]
        redacted_audio: Option<PathBuf>,
    },
    /// Record a human evaluation of a call (a CSV file in OUT/evaluations/_drop/) and update
    /// the evaluations table.
    Evaluate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        call: String,
        /// The evaluator's overall verdict.
        #[arg(long, action = clap::ArgAction::Set)]
        passed: bool,
        #[arg(long, default_value = "")]
        evaluator: String,
        /// Rule ids whose automatic flag (or absence) the evaluator confirms, comma-separated.
        #[arg(long, value_delimiter = ',')]
        confirmed: Vec<String>,
        /// Rule ids whose automatic flag the evaluator rejects.
        #[arg(long, value_delimiter = ',')]
        rejected: Vec<String>,
        /// Rule ids that do not apply to this call.
        #[arg(long, value_delimiter = ',')]
        not_applicable: Vec<String>,
    },
    /// Print every table's columns, types and descriptions.
    Schema,
    /// Print the effective configuration (defaults merged with FILE) as TOML.
    Config { file: Option<PathBuf> },
    /// Manage Whisper model files.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Convert a CTranslate2 Whisper directory into a whisper.cpp GGML file.
    Convert {
        /// Folder with model.bin and vocabulary.json or vocabulary.txt.
        #[arg(long)]
        ct2: PathBuf,
        /// GGML file to write.
        #[arg(long)]
        out: PathBuf,
        /// Storage type of the weight matrices.
        #[arg(long, value_enum, default_value = "q8_0")]
        quantize: WeightType,
    },
    /// Print the header and tensor count of a GGML Whisper file.
    Inspect { file: PathBuf },
    /// Print the default model and weights for this build ("base bf16" or "base q8_0-f16enc"), as
    /// `scripts/fetch-model.sh` takes them.
    Default,
}

extern "C" {
    /// Defined by `scripts/whisper-cpp/sgemm-q8_0-five-columns.patch`.
    fn callqa_sgemm_q8_0_five_columns() -> std::ffi::c_int;
}

/// Makes a callqa whose whisper.cpp missed the repository's patches (built without its
/// `.cargo/config.toml`, e.g. from outside the checkout) fail to link, rather than decode beam
/// search more slowly.
#[used]
static REQUIRES_PATCHED_WHISPER_CPP: unsafe extern "C" fn() -> std::ffi::c_int = callqa_sgemm_q8_0_five_columns;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CALLQA_LOG").unwrap_or_else(|_| "info,whisper_rs=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each said once: library errors name their cause in
/// their own message too, so anyhow's `{:#}` printed it twice.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let read = callqa::config::ConfigError::Read { path: "c.toml".into(), source: missing };
        let err = anyhow::Error::new(read).context("starting the run");
        let line = super::one_line(&err);
        assert_eq!(line.matches("entity not found").count(), 1, "{line}");
        assert!(line.starts_with("starting the run: cannot read config c.toml: "), "{line}");
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// A progress bar on a terminal; hidden when stderr is not one (logs, CI).
fn progress_bar() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} calls ({eta} left)")
            .expect("valid template"),
    );
    bar
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Model(ModelCommand::Convert { ct2, out, quantize }) => {
            let converted = model::convert_dir(&ct2, &out, quantize)?;
            println!(
                "wrote {} ({} tensors, {} layers/{} layers, vocabulary {}, weights {})",
                out.display(),
                converted.tensor_count,
                converted.hparams.n_audio_layer,
                converted.hparams.n_text_layer,
                converted.vocab_size,
                quantize.name()
            );
        }
        Command::Run {
            input,
            out,
            config,
            model,
            jobs,
            no_asr,
            reprocess,
            stats,
            commit_every,
            commit_interval_s,
            max_attempts,
            keep_pii,
            redacted_audio,
            shard,
            shards,
        } => {
            let mut config = load_config(config.as_deref())?;
            config.run.commit_every = commit_every.unwrap_or(config.run.commit_every);
            config.run.commit_interval_s = commit_interval_s.unwrap_or(config.run.commit_interval_s);
            config.run.max_attempts = max_attempts.unwrap_or(config.run.max_attempts);
            config.privacy.redact &= !keep_pii;
            anyhow::ensure!(
                config.privacy.redact || redacted_audio.is_none(),
                "--redacted-audio needs redaction: privacy.redact is off in the config"
            );
            // Command-line values meet the same ranges as the file's.
            let config = Config::parse(&config.to_toml()).map_err(|e| anyhow::anyhow!("{e}"))?;
            use callqa::run::shard::Shard;
            let shard = match shard {
                Some(spec) => Some(Shard::parse(&spec)?),
                None => Shard::from_env(shards, |name| std::env::var(name).ok())?,
            };
            let out = callqa::storage::Storage::parse(&out)?;
            anyhow::ensure!(
                redacted_audio.as_deref().is_none_or(|dir| !callqa::storage::is_url(&dir.to_string_lossy())),
                "--redacted-audio writes to a local folder"
            );
            let options = RunOptions {
                input,
                out,
                config,
                model,
                jobs,
                no_asr,
                reprocess,
                worker_exe: None,
                redacted_audio,
                shard,
            };
            let bar = progress_bar();
            let summary = callqa::run::run(&options, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            for failure in &summary.failures {
                eprintln!("failed: {failure}");
            }
            println!("{}", summary.line());
            if let Some(path) = stats {
                path.parent()
                    .filter(|dir| !dir.as_os_str().is_empty())
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|_| std::fs::write(&path, serde_json::to_string_pretty(&summary)?))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("tables written under {}", options.out.describe(""));
            return Ok(ExitCode::from(summary.exit_status() as u8));
        }
        Command::Worker { model } => {
            callqa::asr::process::serve(&model)?;
        }
        Command::Assemble { spec, clips, out } => {
            let text = std::fs::read_to_string(&spec).with_context(|| format!("reading {}", spec.display()))?;
            let call_spec: callqa::assemble::CallSpec =
                toml::from_str(&text).with_context(|| format!("parsing {}", spec.display()))?;
            let base = clips.unwrap_or_else(|| spec.parent().unwrap_or(std::path::Path::new(".")).to_path_buf());
            let (wav, truth) = callqa::assemble::assemble(&call_spec, &base)?;
            std::fs::write(&out, wav).with_context(|| format!("writing {}", out.display()))?;
            let truth_path = out.with_extension("truth.json");
            std::fs::write(&truth_path, serde_json::to_string_pretty(&truth)?)?;
            println!("wrote {} ({:.1} s) and {}", out.display(), truth.duration_s, truth_path.display());
        }
        Command::Sample { out, month, rate, min_per_agent, risk_inclusion, seed, config } => {
            let config = load_config(config.as_deref())?;
            config.privacy.output_access.apply();
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate) && (0.0..=1.0).contains(&risk_inclusion),
                "--rate and --risk-inclusion are shares between 0 and 1"
            );
            let settings = SampleSettings { rate, min_per_agent, risk_inclusion, seed };
            let (selected, total) = callqa::review::sample(&out, &month, &settings, &config.scorecard)?;
            let risk = selected.iter().filter(|s| s.stratum == "risk").count();
            println!(
                "{month}: {} of {total} calls selected ({:.1}%; {risk} risk, {} random) -> {}",
                selected.len(),
                100.0 * selected.len() as f64 / total.max(1) as f64,
                selected.len() - risk,
                out.join("samples").display()
            );
        }
        Command::Rescore { out, config, month, from, to } => {
            let config = load_config(Some(&config))?;
            let range = match (month, from, to) {
                (Some(month), _, _) => callqa::rescore::DateRange::month(&month)?,
                (None, Some(from), Some(to)) => callqa::rescore::DateRange::between(from, to)?,
                _ => anyhow::bail!("give --month YYYY-MM, or --from and --to"),
            };
            let summary = callqa::rescore::rescore(&out, &config, &range)?;
            println!(
                "rescored {} calls of {} call dates in {:.1} s (run {})",
                summary.calls, summary.dates, summary.wall_s, summary.run_id
            );
        }
        Command::Report { out, month, seed, config, redacted_audio } => {
            let config = load_config(config.as_deref())?;
            config.privacy.output_access.apply();
            let settings = SampleSettings { seed, ..Default::default() };
            let audio = callqa::review::AudioLinks { redacted_dir: redacted_audio.as_deref() };
            let files = callqa::review::report(&out, &month, &settings, &config.scorecard, &audio)?;
            println!(
                "{} agents, {} rules with human verdicts; agent_month: {}; rule_agreement: {}; report: {}",
                files.agents.len() - 1,
                files.rules.iter().filter(|r| r.evaluated > 0).count(),
                files.agent_month.display(),
                files.rule_agreement.display(),
                files.html.display()
            );
        }
        Command::Compact { out, table, before } => {
            let out = callqa::storage::Storage::parse(&out)?;
            let before = before.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let options = callqa::sinks::compact::CompactOptions { tables: table, before };
            let done = callqa::sinks::compact::compact(&out, &options)?;
            println!(
                "compacted {} partitions: {} files into {}, {} rows, {} superseded call versions dropped",
                done.partitions, done.files_before, done.files_after, done.rows, done.superseded_calls
            );
        }
        Command::Evaluate { out, call, passed, evaluator, confirmed, rejected, not_applicable } => {
            use callqa::sampling::agreement::{Evaluation, Verdict};
            let verdicts = [
                (confirmed, Verdict::Confirmed),
                (rejected, Verdict::Rejected),
                (not_applicable, Verdict::NotApplicable),
            ]
            .into_iter()
            .flat_map(|(rules, verdict)| rules.into_iter().filter(|r| !r.trim().is_empty()).map(move |r| (r, verdict)))
            .collect();
            let evaluation = Evaluation {
                call_id: call,
                evaluator,
                evaluated_at: Some(chrono::Utc::now().timestamp_micros()),
                passed,
                verdicts,
            };
            let file = callqa::review::evaluations::append(&out, &evaluation)?;
            let all = callqa::review::evaluations::sync_table(&out)?;
            println!(
                "recorded {}; {} evaluations in {}",
                file.display(),
                all.len(),
                callqa::review::evaluations::table_path(&out).display()
            );
        }
        Command::Schema => print!("{}", callqa::sinks::schema::describe()),
        Command::Config { file } => print!("{}", load_config(file.as_deref())?.to_toml()),
        Command::Model(ModelCommand::Inspect { file }) => {
            let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let summary = model::ggml::read_summary(std::io::BufReader::new(f))
                .with_context(|| format!("reading {}", file.display()))?;
            println!("{:#?}\ntensors: {}", summary.hparams, summary.tensors.len());
        }
        Command::Model(ModelCommand::Default) => {
            let registry = model::registry::Registry::bundled();
            println!("{} {}", registry.default, registry.default_weights().name());
        }
    }
    Ok(ExitCode::SUCCESS)
}
