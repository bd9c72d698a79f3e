//! The `callqa` command line: parse arguments, run one command, map the outcome to an exit code
//! (0 all good, 1 finished with failed calls, 2 fatal).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use callqa::model::{self, WeightType};

#[derive(Parser)]
#[command(
    name = "callqa",
    version,
    about = "Call-centre QA analytics: call recordings in, Parquet tables out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcribe WAV files and print one line per utterance (speaker, times, text).
    Transcribe {
        files: Vec<PathBuf>,
        /// GGML model file (default: the registry's default model under models/).
        #[arg(long)]
        model: Option<PathBuf>,
        /// "auto" or a Whisper language code.
        #[arg(long, default_value = "auto")]
        language: String,
        /// Beam width (1 = greedy).
        #[arg(long, default_value_t = 5)]
        beam_size: u32,
    },
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CALLQA_LOG")
                .unwrap_or_else(|_| "info,whisper_rs=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
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
        Command::Transcribe {
            files,
            model,
            language,
            beam_size,
        } => {
            let model_path = callqa::model::registry::resolve(model.as_deref())?;
            let settings = callqa::asr::AsrSettings {
                language,
                beam_size,
                ..Default::default()
            };
            let transcriber = callqa::asr::Transcriber::load(&model_path, settings)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
            let mut worker = transcriber.worker(threads)?;
            for file in files {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let audio = callqa::audio::decode::decode_wav(&bytes, 4.0 * 3600.0)
                    .with_context(|| format!("decoding {}", file.display()))?;
                for channel in callqa::audio::to_speaker_channels(&audio, 0)? {
                    let speech = callqa::vad::detect(&channel.samples_16k, &Default::default());
                    let t = worker.transcribe(channel.speaker, &channel.samples_16k, &speech)?;
                    for u in t.utterances {
                        println!(
                            "{}\t{}\t{:.2}\t{:.2}\t{}",
                            file.display(),
                            u.speaker,
                            u.start_s,
                            u.end_s,
                            u.text
                        );
                    }
                }
            }
        }
        Command::Model(ModelCommand::Inspect { file }) => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let summary = model::ggml::read_summary(std::io::BufReader::new(f))
                .with_context(|| format!("reading {}", file.display()))?;
            println!("{:#?}\ntensors: {}", summary.hparams, summary.tensors.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
