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
    let root = std::env::var_os("CALLQA_CORPUS")
        .map_or_else(|| repo().join("../shared/corpus"), PathBuf::from);
    let path = root.join(file);
    assert!(
        path.exists(),
        "corpus file {} is missing (is ../shared beside the checkout?)",
        path.display()
    );
    path
}

/// A fetched model; tests fail (not skip) when it is missing, naming the command.
pub fn model(name: &str, weights: &str) -> PathBuf {
    let dir =
        std::env::var_os("CALLQA_MODELS_DIR").map_or_else(|| repo().join("models"), PathBuf::from);
    let path = dir.join(format!("ggml-{name}-{weights}.bin"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh {name} {weights}",
        path.display()
    );
    path
}

pub fn transcriber(weights: &str, language: &str) -> Transcriber {
    let settings = AsrSettings {
        language: language.into(),
        ..Default::default()
    };
    Transcriber::load(&model("base", weights), settings).expect("model loads")
}

/// Transcribe one corpus file, all channels, through decode -> resample -> VAD -> ASR.
pub fn transcribe_file(t: &Transcriber, file: &PathBuf) -> Vec<Utterance> {
    let audio = callqa::audio::decode::decode_wav(&std::fs::read(file).unwrap(), 3600.0).unwrap();
    let mut worker = t.worker(2).unwrap();
    let mut out = Vec::new();
    for ch in callqa::audio::to_speaker_channels(&audio, 0).unwrap() {
        let speech = callqa::vad::detect(&ch.samples_16k, &Default::default());
        out.extend(
            worker
                .transcribe(ch.speaker, &ch.samples_16k, &speech)
                .unwrap()
                .utterances,
        );
    }
    out
}

pub fn joined_text(utterances: &[Utterance]) -> String {
    utterances
        .iter()
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reference transcript of a corpus file, from MANIFEST.tsv.
pub fn reference(file: &str) -> String {
    let manifest = std::fs::read_to_string(corpus("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header
        .iter()
        .position(|h| *h == "reference_transcript")
        .unwrap();
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|cols| cols[0] == file)
        .map(|cols| cols[col].to_string())
        .unwrap_or_else(|| panic!("{file} not in MANIFEST.tsv"))
}
