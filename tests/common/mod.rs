//! Shared helpers for integration tests: where the models and the real-speech corpus are.
#![allow(dead_code)]

use std::path::PathBuf;

use callqa::asr::{AsrSettings, Transcriber};
use callqa::record::Utterance;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/corpus` beside the checkout (or `$CALLQA_CORPUS`).
pub fn corpus(file: &str) -> PathBuf {
    let root = std::env::var_os("CALLQA_CORPUS").map_or_else(|| repo().join("../shared/corpus"), PathBuf::from);
    let path = root.join(file);
    assert!(path.exists(), "corpus file {} is missing (is ../shared beside the checkout?)", path.display());
    path
}

/// A fetched model; tests fail (not skip) when it is missing, naming the command.
pub fn model(name: &str, weights: &str) -> PathBuf {
    let dir = std::env::var_os("CALLQA_MODELS_DIR").map_or_else(|| repo().join("models"), PathBuf::from);
    let path = dir.join(format!("ggml-{name}-{weights}.bin"));
    assert!(path.exists(), "{} is missing: run scripts/fetch-model.sh {name} {weights}", path.display());
    path
}

pub fn transcriber(weights: &str, language: &str) -> Transcriber {
    let settings = AsrSettings { language: language.into(), ..Default::default() };
    Transcriber::load(&model("base", weights), settings).expect("model loads")
}

/// Threads per whisper call in tests. cargo runs as many tests at once as there are cores,
/// and ggml's threads spin at barriers: two tests on two threads each on a 2-core machine
/// took several times as long as on one thread each.
pub const DECODE_THREADS: u32 = 1;

/// Transcribe one corpus file, all channels, through decode -> resample -> VAD -> ASR.
pub fn transcribe_file(t: &Transcriber, file: &PathBuf) -> Vec<Utterance> {
    let audio = callqa::audio::decode::decode_wav(&std::fs::read(file).unwrap(), 3600.0).unwrap();
    let mut worker = t.worker(DECODE_THREADS).unwrap();
    let mut out = Vec::new();
    for ch in callqa::audio::to_speaker_channels(&audio, 0).unwrap() {
        let speech = callqa::vad::detect(&ch.samples_16k, &Default::default());
        out.extend(worker.transcribe(ch.speaker, &ch.samples_16k, &speech).unwrap().utterances);
    }
    out
}

pub fn joined_text(utterances: &[Utterance]) -> String {
    utterances.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// The reference transcript of a corpus file, from MANIFEST.tsv.
pub fn reference(file: &str) -> String {
    let manifest = std::fs::read_to_string(corpus("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header.iter().position(|h| *h == "reference_transcript").unwrap();
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[0] == file)
        .map(|cols| cols[col].to_string())
        .unwrap_or_else(|| panic!("{file} not in MANIFEST.tsv"))
}

/// Every row of a table under `out` (all partitions), with `call_date` restored from the path.
pub fn read_table(out: &std::path::Path, table: &str) -> Vec<std::collections::BTreeMap<String, serde_json::Value>> {
    use arrow::array::Array;
    let mut rows = Vec::new();
    let root = out.join(table);
    if !root.exists() {
        return rows;
    }
    for entry in walkdir::WalkDir::new(&root).sort_by_file_name().into_iter().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        if !entry.file_type().is_file() || !name.ends_with(".parquet") || name.starts_with('.') {
            continue;
        }
        let date = entry
            .path()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("call_date=")
            .to_string();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(entry.path()).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let mut buf = Vec::new();
            let mut writer = arrow::json::ArrayWriter::new(&mut buf);
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
            let parsed: Vec<std::collections::BTreeMap<String, serde_json::Value>> =
                serde_json::from_slice(&buf).unwrap_or_default();
            assert_eq!(parsed.len(), batch.num_rows());
            for mut row in parsed {
                row.insert("call_date".into(), serde_json::Value::String(date.clone()));
                rows.push(row);
            }
            let _ = batch.column(0).len();
        }
    }
    rows
}

/// The Python with pyarrow, DuckDB and Polars (`scripts/setup.sh --test` makes `.venv`).
pub fn python() -> String {
    std::env::var("CALLQA_PYTHON").unwrap_or_else(|_| repo().join(".venv/bin/python").display().to_string())
}

/// Polls `ready` every 50 ms until it holds; fails the test naming `what` after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn callqa_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_callqa"))
}

/// Corpus clip with reference: (file, reference text).
pub fn clip(file: &str) -> (std::path::PathBuf, String) {
    (corpus(file), reference(file))
}

/// Synthesise English speech (US voice, 150 words a minute) into a WAV file.
pub fn espeak(text: &str, path: &std::path::Path) {
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(path)
        .arg(text)
        .status()
        .expect("espeak-ng runs (scripts/setup.sh installs it)");
    assert!(status.success());
}

/// `count` two-channel 8 kHz calls `callNN.wav` in `dir`, each three turns of real Mandarin
/// recordings in an order drawn from `seed`, every second call with 6 s gaps.
pub fn assembled_calls(dir: &std::path::Path, count: usize, seed: u64) {
    use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
    use callqa::record::Speaker;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    const CLIPS: [&str; 6] = [
        "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
        "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
        "PaddlePaddle__PaddleSpeech/zh.wav",
        "modelscope__FunASR/asr_example.wav",
        "k2-fsa__sherpa/funasr-nano_far_2.wav",
        "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    ];
    let clips: Vec<Vec<f32>> = CLIPS.iter().map(|f| assemble::load_clip(&corpus(f)).unwrap()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for k in 0..count {
        let mut order: Vec<usize> = (0..clips.len()).collect();
        order.shuffle(&mut rng);
        let (mut turns, mut samples, mut at) = (Vec::new(), Vec::new(), 0.5);
        for (i, &c) in order[..3].iter().enumerate() {
            let speaker = if i % 2 == 0 { Speaker::Agent } else { Speaker::Customer };
            turns.push(TurnSpec { speaker, clip: PathBuf::new(), start_s: at, text: String::new(), gain_db: 0.0 });
            samples.push(clips[c].clone());
            at += clips[c].len() as f64 / 16_000.0 + 0.5 + 6.0 * (k % 2) as f64;
        }
        let spec =
            CallSpec { sample_rate_hz: 8000, codec: Codec::PcmS16, mono: false, bleed_db: None, tail_s: 1.0, turns };
        std::fs::write(dir.join(format!("call{k:02}.wav")), assemble::assemble_with(&spec, &samples).unwrap().0)
            .unwrap();
    }
}
