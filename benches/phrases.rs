//! Phrase detection on real speech: precision and recall of the phrase rules, one row per
//! recall lever (decoding settings, prompts, matching thresholds).
//!
//! Two-channel 8 kHz calls are assembled from real recordings in ../shared/corpus, half of
//! them with the other party's voice bleeding in at -30 dB; the rules are phrases cut from
//! the recordings' reference transcripts. A rule on a phrase the agent really said must fire;
//! rules on phrases only the customer said, or that nobody in the call said, must not. The
//! whole pipeline runs (decode, resample, VAD, Whisper base q8_0, matching). Run with
//! `scripts/bench-phrases.sh`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use callqa::asr::{AsrSettings, Transcriber};
use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::config::Config;
use callqa::record::{CallSource, EventKind, Severity, Speaker, TranscribedCall};
use callqa::rules::{self, MatchSettings, PhraseRule, RuleKind, SpeakerScope};

const ZH: [&str; 18] = [
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
    "modelscope__FunASR/paraformer_example_1.wav",
    "modelscope__FunASR/paraformer_example_2.wav",
];
const EN: [&str; 7] = [
    "wenet-e2e__wenet/librispeech-1995-1837-0001.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "k2-fsa__sherpa/1221-135766-0001.wav",
    "ggerganov__whisper.cpp/jfk.wav",
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "k2-fsa__sherpa/funasr-nano_noise_en.wav",
    "k2-fsa__icefall/Lab41-SRI-VOiCES-src-sp0307-ch127535-sg0042.wav",
];
/// Calls per language: agent clip k, customer clip k+1, absent clip k+2 (wrapping).
const ZH_CALLS: usize = 14;
const EN_CALLS: usize = 7;

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

/// Three phrases from a reference, at its start, middle and end: Chinese 4, 5 and 6
/// characters, English 3, 4 and 3 words.
fn phrases(file: &str, chinese: bool) -> Vec<String> {
    let text = reference(file);
    let spread = |n: usize, lengths: [usize; 3]| -> Vec<(usize, usize)> {
        lengths.iter().enumerate().filter(|(_, len)| **len <= n).map(|(i, &len)| ((n - len) * i / 2, len)).collect()
    };
    if chinese {
        let chars: Vec<char> = callqa::textnorm::comparison_key(&text).chars().collect();
        spread(chars.len(), [4, 5, 6]).into_iter().map(|(at, n)| chars[at..at + n].iter().collect()).collect()
    } else {
        let words = callqa::textnorm::words(&text);
        spread(words.len(), [3, 4, 3]).into_iter().map(|(at, n)| words[at..at + n].join(" ")).collect()
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

/// One assembled call and the rules it is scored with (`true`: must fire).
struct BenchCall {
    id: String,
    language: &'static str,
    wav: Vec<u8>,
    duration_s: f64,
    rules: Vec<(PhraseRule, bool)>,
}

fn bench_calls() -> Vec<BenchCall> {
    let mut calls = Vec::new();
    for (language, files, count) in [("zh", &ZH[..], ZH_CALLS), ("en", &EN[..], EN_CALLS)] {
        let chinese = language == "zh";
        for k in 0..count {
            let (agent, customer, absent) = (files[k], files[(k + 1) % files.len()], files[(k + 2) % files.len()]);
            let clips: Vec<Vec<f32>> =
                [agent, customer].iter().map(|f| assemble::load_clip(&corpus().join(f)).unwrap()).collect();
            let agent_len = clips[0].len() as f64 / 16_000.0;
            let turn = |speaker, clip: &str, start_s| TurnSpec {
                speaker,
                clip: clip.into(),
                start_s,
                text: String::new(),
                gain_db: 0.0,
            };
            let spec = CallSpec {
                sample_rate_hz: 8000,
                codec: Codec::PcmS16,
                mono: false,
                // Half the calls with crosstalk: each party heard faintly on the other's channel.
                bleed_db: (k % 2 == 0).then_some(-30.0),
                tail_s: 1.0,
                turns: vec![turn(Speaker::Agent, agent, 0.5), turn(Speaker::Customer, customer, agent_len + 1.5)],
            };
            let (wav, truth) = assemble::assemble_with(&spec, &clips).unwrap();
            let said_by_agent = callqa::textnorm::comparison_key(&reference(agent));
            let mut rules = Vec::new();
            for (file, should_fire) in [(agent, true), (customer, false), (absent, false)] {
                for (i, p) in phrases(file, chinese).iter().enumerate() {
                    // A phrase the agent's sentence happens to contain is not a must-not case.
                    if !should_fire && said_by_agent.contains(&callqa::textnorm::comparison_key(p)) {
                        continue;
                    }
                    rules.push((rule(format!("{file}#{i}"), p), should_fire));
                }
            }
            calls.push(BenchCall { id: format!("{language}{k}"), language, wav, duration_s: truth.duration_s, rules });
        }
    }
    calls
}

/// A decoding setting measured as a recall lever.
struct Decoding {
    name: &'static str,
    settings: fn(&BenchCall) -> AsrSettings,
}

fn base(call: &BenchCall) -> AsrSettings {
    AsrSettings { language: call.language.into(), ..Default::default() }
}

/// A prompt setting the scene: a Mandarin (Simplified) or English service call.
fn context_prompt(call: &BenchCall) -> AsrSettings {
    let prompt = match call.language {
        "zh" => "以下是普通话客服电话的录音，使用简体中文。您好，请问有什么可以帮您？",
        _ => "A customer service phone call. Hello, how can I help you today?",
    };
    AsrSettings { initial_prompt: [(call.language.to_string(), prompt.to_string())].into(), ..base(call) }
}

/// Every rule phrase of the call (those that must not fire too) as the prompt, as a centre
/// would prompt with its whole lexicon.
fn phrase_prompt(call: &BenchCall) -> AsrSettings {
    let separator = if call.language == "zh" { "，" } else { ", " };
    let mut phrases: Vec<&str> = call.rules.iter().map(|(r, _)| r.patterns[0].as_str()).collect();
    phrases.sort();
    let prompt = phrases.join(separator);
    AsrSettings { initial_prompt: [(call.language.to_string(), prompt)].into(), ..base(call) }
}

const DECODINGS: [Decoding; 5] = [
    Decoding { name: "beam 5, default matching", settings: base },
    Decoding { name: "greedy", settings: |c| AsrSettings { beam_size: 1, ..base(c) } },
    Decoding {
        name: "beam 5, no temperature fallback",
        settings: |c| AsrSettings { temperature_fallback: false, ..base(c) },
    },
    Decoding { name: "beam 5 + service-context prompt", settings: context_prompt },
    Decoding { name: "beam 5 + rule phrases as prompt", settings: phrase_prompt },
];

/// Matching settings measured on the default decoding's transcripts.
fn matchings() -> Vec<(&'static str, MatchSettings)> {
    let default = MatchSettings::default();
    let before = MatchSettings { max_edit_ratio_zh: 0.2, near_sounds: false, ..default.clone() };
    vec![
        ("exact only", MatchSettings { fuzzy: false, ..default.clone() }),
        ("fuzzy, zh 0.2 (the previous default)", before.clone()),
        ("fuzzy, zh 0.25", MatchSettings { max_edit_ratio_zh: 0.25, ..before.clone() }),
        ("fuzzy, zh 0.34", MatchSettings { max_edit_ratio_zh: 0.34, ..before.clone() }),
        (
            "fuzzy, zh 0.34, words 0.34",
            MatchSettings { max_edit_ratio_zh: 0.34, max_edit_ratio_words: 0.34, ..before.clone() },
        ),
        ("fuzzy + near sounds, zh 0.2", MatchSettings { near_sounds: true, ..before.clone() }),
        ("fuzzy + near sounds, zh 0.25", MatchSettings { near_sounds: true, max_edit_ratio_zh: 0.25, ..before }),
    ]
}

fn count(counts: &mut Counts, call: &BenchCall, transcript: &TranscribedCall, matching: &MatchSettings) {
    let text = rules::CallText {
        utterances: &transcript.utterances,
        speech: &transcript.speech,
        duration_s: call.duration_s,
        language: call.language,
        holds: &[],
    };
    for (r, should_fire) in &call.rules {
        let fired = rules::evaluate(std::slice::from_ref(r), matching, &text)
            .iter()
            .any(|e| e.kind == EventKind::ForbiddenPhrase);
        if fired != *should_fire
            && *matching == MatchSettings::default()
            && std::env::var_os("CALLQA_BENCH_SHOW_ERRORS").is_some()
        {
            let agent: Vec<&str> =
                transcript.utterances.iter().filter(|u| u.speaker == Speaker::Agent).map(|u| u.text.as_str()).collect();
            eprintln!(
                "{} {}: {:?} | agent heard: {}",
                if fired { "FP" } else { "FN" },
                call.id,
                r.patterns[0],
                agent.join(" | ")
            );
        }
        match (fired, should_fire) {
            (true, true) => counts.tp += 1,
            (true, false) => counts.fp += 1,
            (false, true) => counts.fn_ += 1,
            (false, false) => counts.tn += 1,
        }
    }
}

fn transcribe(call: &BenchCall, settings: AsrSettings, threads: u32) -> TranscribedCall {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/ggml-base-q8_0.bin");
    let transcriber = Transcriber::load(&model, settings.clone()).expect("run scripts/fetch-model.sh first");
    let mut worker = transcriber.worker(threads).unwrap();
    let config = Config { asr: settings, ..Config::default() };
    let source = CallSource {
        size_bytes: None,
        call_id: call.id.clone(),
        path: PathBuf::new(),
        agent_id: None,
        started_at: None,
        call_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        agent_channel: None,
    };
    let asr = callqa::run::stages::Asr {
        decoder: &mut worker,
        settings: &config.asr,
        model_name: "base",
        threads: &|| threads,
    };
    callqa::run::stages::process_call(&source, call.wav.clone(), String::new(), &config, Some(asr)).unwrap().call
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let calls = bench_calls();
    let only: Option<String> = std::env::var("CALLQA_BENCH_LEVERS").ok();
    // (lever, language) -> counts, in the order measured.
    let mut rows: Vec<(String, &str, Counts, f64)> = Vec::new();
    for decoding in
        DECODINGS.iter().filter(|d| only.as_deref().is_none_or(|o| o.split(',').any(|n| d.name.starts_with(n))))
    {
        let mut by_language: BTreeMap<&str, (Counts, f64)> = BTreeMap::new();
        let mut by_matching: Vec<BTreeMap<&str, Counts>> = vec![BTreeMap::new(); matchings().len()];
        for call in &calls {
            let clock = Instant::now();
            let transcript = transcribe(call, (decoding.settings)(call), threads);
            let entry = by_language.entry(call.language).or_default();
            entry.1 += clock.elapsed().as_secs_f64();
            count(&mut entry.0, call, &transcript, &MatchSettings::default());
            if decoding.name == DECODINGS[0].name {
                for ((_, matching), counts) in matchings().iter().zip(by_matching.iter_mut()) {
                    count(counts.entry(call.language).or_default(), call, &transcript, matching);
                }
            }
            let heard: Vec<String> =
                transcript.utterances.iter().map(|u| format!("{}: {}", u.speaker, u.text)).collect();
            eprintln!("[{}] {}: {}", decoding.name, call.id, heard.join(" | "));
        }
        for (language, (counts, seconds)) in by_language {
            rows.push((decoding.name.to_string(), language, counts, seconds));
        }
        if decoding.name == DECODINGS[0].name {
            for ((name, _), counts) in matchings().iter().zip(by_matching) {
                for (language, counts) in counts {
                    rows.push((format!("beam 5, matching {name}"), language, counts, f64::NAN));
                }
            }
        }
    }
    let audio_s: f64 = calls.iter().map(|c| c.duration_s).sum();
    println!(
        "{} calls ({:.0} s of audio); per language: should fire / must not fire as counted below",
        calls.len(),
        audio_s
    );
    println!(
        "| lever | language | should fire | must not fire | TP | FP | FN | precision | recall | transcription s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (lever, language, c, seconds) in rows {
        let time = if seconds.is_nan() { "same transcripts".to_string() } else { format!("{seconds:.0}") };
        println!(
            "| {lever} | {language} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {time} |",
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
