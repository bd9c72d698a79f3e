//! Phrase detection on real speech: precision and recall of exact vs fuzzy matching.
//!
//! Two-channel 8 kHz calls are assembled from real recordings in ../shared/corpus; the rules
//! are phrases taken from the recordings' reference transcripts. A rule on a phrase the agent
//! really said must fire; rules on phrases only the customer said, or that nobody in the call
//! said, must not. The whole pipeline runs (decode, resample, VAD, Whisper base q8_0,
//! matching). Run with `scripts/bench-phrases.sh`.

use std::path::PathBuf;

use callqa::asr::{AsrSettings, Transcriber};
use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::config::Config;
use callqa::record::{CallSource, EventKind, Severity, Speaker};
use callqa::rules::{self, MatchSettings, PhraseRule, RuleKind, SpeakerScope};

const ZH: [&str; 16] = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "modelscope__FunASR/asr_example.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "FireRedTeam__FireRedASR/TEST_NET_Y0000000000_-KTKHdZ2fb8_S00000.wav",
    "k2-fsa__sherpa/funasr-nano_far_2.wav",
    "FireRedTeam__FireRedASR/TEST_MEETING_T0000000001_S00000.wav",
    "k2-fsa__sherpa/funasr-nano_far_4.wav",
    "k2-fsa__sherpa/funasr-nano_far_5.wav",
    "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    "wenet-e2e__wenet/NST_example_ID001.wav",
    "wenet-e2e__wenet/NST_example_ID002.wav",
    "k2-fsa__sherpa/qwen3-asr_fast1.wav",
    "k2-fsa__sherpa/funasr-nano_far_3.wav",
];
const EN: [&str; 6] = [
    "wenet-e2e__wenet/librispeech-1995-1837-0001.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "k2-fsa__sherpa/1221-135766-0001.wav",
    "ggerganov__whisper.cpp/jfk.wav",
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "k2-fsa__sherpa/funasr-nano_noise_en.wav",
];

fn corpus() -> PathBuf {
    std::env::var_os("CALLQA_CORPUS")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"), PathBuf::from)
}

fn reference(file: &str) -> String {
    let manifest = std::fs::read_to_string(corpus().join("MANIFEST.tsv")).expect("corpus manifest");
    let mut lines = manifest.lines();
    let col = lines.next().unwrap().split('\t').position(|h| h == "reference_transcript").unwrap();
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .find(|c| c[0] == file)
        .map(|c| c[col].to_string())
        .expect("file in manifest")
}

/// Two phrases from a reference: Chinese 4 and 6 characters, English 3 and 4 words, taken at
/// a quarter and at half of the sentence.
fn phrases(file: &str, chinese: bool) -> Vec<String> {
    let text = reference(file);
    if chinese {
        let chars: Vec<char> = callqa::textnorm::comparison_key(&text).chars().collect();
        [(chars.len() / 4, 4), (chars.len() / 2, 6)]
            .iter()
            .filter(|(at, n)| at + n <= chars.len())
            .map(|(at, n)| chars[*at..at + n].iter().collect())
            .collect()
    } else {
        let words = callqa::textnorm::words(&text);
        [(words.len() / 4, 3), (words.len() / 2, 4)]
            .iter()
            .filter(|(at, n)| at + n <= words.len())
            .map(|(at, n)| words[*at..at + n].join(" "))
            .collect()
    }
}

fn rule(id: String, pattern: &str) -> PhraseRule {
    PhraseRule {
        id,
        kind: RuleKind::Forbidden,
        speaker: SpeakerScope::Agent,
        patterns: vec![pattern.into()],
        severity: Severity::Major,
        points: 1.0,
        ..Default::default()
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Counts {
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

fn main() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base-q8_0.bin");
    let mut results: Vec<(&str, Counts, Counts)> = Vec::new();
    for (language, files) in [("zh", &ZH[..]), ("en", &EN[..])] {
        let settings = AsrSettings { language: language.into(), ..Default::default() };
        let transcriber = Transcriber::load(&model, settings.clone()).expect("run scripts/fetch-model.sh first");
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let mut worker = transcriber.worker(threads).unwrap();
        let config = Config { asr: settings, ..Config::default() };
        let (mut exact, mut fuzzy) = (Counts::default(), Counts::default());
        let calls = files.len() / 2;
        for k in 0..calls {
            let (agent, customer) = (files[2 * k], files[2 * k + 1]);
            let absent = files[(2 * k + 2) % files.len()];
            let clips: Vec<Vec<f32>> =
                [agent, customer].iter().map(|f| assemble::load_clip(&corpus().join(f)).unwrap()).collect();
            let agent_len = clips[0].len() as f64 / 16_000.0;
            let spec = CallSpec {
                sample_rate_hz: 8000,
                codec: Codec::PcmS16,
                mono: false,
                bleed_db: Some(-30.0),
                tail_s: 1.0,
                turns: vec![
                    TurnSpec {
                        speaker: Speaker::Agent,
                        clip: agent.into(),
                        start_s: 0.5,
                        text: String::new(),
                        gain_db: 0.0,
                    },
                    TurnSpec {
                        speaker: Speaker::Customer,
                        clip: customer.into(),
                        start_s: agent_len + 1.5,
                        text: String::new(),
                        gain_db: 0.0,
                    },
                ],
            };
            let (wav, truth) = assemble::assemble_with(&spec, &clips).unwrap();
            let source = CallSource {
                call_id: format!("{language}{k}"),
                path: PathBuf::new(),
                agent_id: None,
                started_at: None,
                call_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                agent_channel: None,
            };
            let asr =
                callqa::run::stages::Asr { decoder: &mut worker, settings: &config.asr, model_name: "base", threads };
            let call = callqa::run::stages::process_call(&source, wav, String::new(), &config, Some(asr)).unwrap().call;
            let chinese = language == "zh";
            let mut rules: Vec<(PhraseRule, bool)> = Vec::new();
            for (file, should_fire) in [(agent, true), (customer, false), (absent, false)] {
                for (i, p) in phrases(file, chinese).iter().enumerate() {
                    rules.push((rule(format!("{file}#{i}"), p), should_fire));
                }
            }
            let text = rules::CallText {
                utterances: &call.utterances,
                speech: &call.speech,
                duration_s: truth.duration_s,
                language,
            };
            for (mode, counts) in [(false, &mut exact), (true, &mut fuzzy)] {
                let matching = MatchSettings { fuzzy: mode, ..Default::default() };
                for (r, should_fire) in &rules {
                    let fired = rules::evaluate(std::slice::from_ref(r), &matching, &text)
                        .iter()
                        .any(|e| e.kind == EventKind::ForbiddenPhrase);
                    match (fired, should_fire) {
                        (true, true) => counts.tp += 1,
                        (true, false) => counts.fp += 1,
                        (false, true) => counts.fn_ += 1,
                        (false, false) => counts.tn += 1,
                    }
                }
            }
            let heard: Vec<String> = call.utterances.iter().map(|u| format!("{}: {}", u.speaker, u.text)).collect();
            eprintln!("{language}{k}: {}", heard.join(" | "));
        }
        results.push((language, exact, fuzzy));
    }
    println!("| language | matching | should fire | must not fire | TP | FP | FN | precision | recall |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (language, exact, fuzzy) in results {
        for (name, c) in [("exact", exact), ("exact + fuzzy", fuzzy)] {
            println!(
                "| {language} | {name} | {} | {} | {} | {} | {} | {:.3} | {:.3} |",
                c.tp + c.fn_,
                c.fp + c.tn,
                c.tp,
                c.fp,
                c.fn_,
                c.precision(),
                c.recall()
            );
        }
    }
}
