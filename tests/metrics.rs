//! Call metrics against exact ground truth (issue 4): two-channel calls assembled from real
//! Mandarin recordings with planted dead air (just under and just over the threshold),
//! interruptions, backchannels and crosstalk, processed with `--no-asr`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use callqa::assemble::{self, CallSpec, Codec, Truth, TurnSpec};
use callqa::config::Config;
use callqa::metrics::{self, intervals};
use callqa::record::{Event, EventKind, Speaker, SpeechInterval};
use common::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const AGENT_CLIPS: [&str; 5] = [
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "modelscope__FunASR/asr_example.wav",
];
const CUSTOMER_CLIPS: [&str; 5] = [
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "wenet-e2e__wenet/NST_example_ID001.wav",
    "wenet-e2e__wenet/NST_example_ID002.wav",
    "FireRedTeam__FireRedASR/IT0011W0001.wav",
    "modelscope__FunASR/paraformer_example_2.wav",
];
/// "哦嗯": a backchannel.
const BACKCHANNEL: &str = "wenet-e2e__wenet/NST_example_ID003.wav";

struct Clips {
    agent: Vec<Vec<f32>>,
    customer: Vec<Vec<f32>>,
    backchannel: Vec<f32>,
}

fn load(files: &[&str]) -> Vec<Vec<f32>> {
    files.iter().map(|f| assemble::load_clip(&corpus(f)).unwrap()).collect()
}

fn secs(clip: &[f32]) -> f64 {
    clip.len() as f64 / 16_000.0
}

/// A call of alternating turns. Between turns: a normal gap, dead air just under or just over
/// `silence.min_s`, or an interruption; backchannels overlap the end of some turns.
fn plan_call(seed: u64, clips: &Clips, bleed: bool) -> (CallSpec, Vec<Vec<f32>>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut turns = Vec::new();
    let mut audio = Vec::new();
    let mut speaker = Speaker::Agent;
    let (mut prev_start, mut prev_end) = (0.0, 0.5);
    for k in 0..12 {
        let pool = if speaker == Speaker::Agent { &clips.agent } else { &clips.customer };
        let clip = pool[rng.random_range(0..pool.len())].clone();
        let prev_len = prev_end - prev_start;
        let start = match (k, rng.random_range(0..6)) {
            (0, _) => 0.5,
            (_, 0) => prev_end + 4.5, // dead air just under the threshold
            (_, 1) => prev_end + rng.random_range(5.5..8.0), // dead air over it
            (_, 2) if prev_len > 3.5 => prev_start + rng.random_range(1.6..2.2), // interruption
            _ => prev_end + rng.random_range(0.4..1.5),
        };
        let other = if speaker == Speaker::Agent { Speaker::Customer } else { Speaker::Agent };
        // Now and then the listener says "哦嗯" over the very end of a turn (0.25 s overlap).
        if k > 0 && rng.random_bool(0.3) && start > prev_end + 1.5 {
            turns.push(TurnSpec {
                speaker: other,
                clip: BACKCHANNEL.into(),
                start_s: prev_end - 0.25,
                text: String::new(),
                gain_db: 0.0,
            });
            audio.push(clips.backchannel.clone());
        }
        let end = start + secs(&clip);
        turns.push(TurnSpec { speaker, clip: PathBuf::new(), start_s: start, text: String::new(), gain_db: 0.0 });
        audio.push(clip);
        prev_start = start;
        prev_end = prev_end.max(end);
        speaker = other;
    }
    let spec = CallSpec {
        sample_rate_hz: 8000,
        codec: Codec::PcmS16,
        mono: false,
        bleed_db: bleed.then_some(-25.0),
        tail_s: 1.0,
        turns,
    };
    (spec, audio)
}

/// The events and talk times the definitions give on the true speech of each speaker.
fn truth_metrics(truth: &Truth) -> (metrics::CallMetrics, Vec<Event>) {
    let of = |who: Speaker| {
        let list: Vec<SpeechInterval> = truth
            .turns
            .iter()
            .filter(|t| t.speaker == who)
            .map(|t| SpeechInterval { start_s: t.start_s, end_s: t.end_s })
            .collect();
        intervals::union(&[&list])
    };
    let speech = vec![(Speaker::Agent, of(Speaker::Agent)), (Speaker::Customer, of(Speaker::Customer))];
    let config = Config::default();
    metrics::compute(&speech, &[], None, &[], &config.metric_settings())
}

struct Scored {
    truth_events: Vec<(String, Event)>,
    detected: Vec<BTreeMap<String, Value>>,
    talk: Vec<(f64, f64)>,
    calls: Vec<BTreeMap<String, Value>>,
}

fn run_batch() -> &'static Scored {
    static SCORED: std::sync::OnceLock<Scored> = std::sync::OnceLock::new();
    SCORED.get_or_init(|| {
        let clips = Clips {
            agent: load(&AGENT_CLIPS),
            customer: load(&CUSTOMER_CLIPS),
            backchannel: assemble::load_clip(&corpus(BACKCHANNEL)).unwrap(),
        };
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("calls");
        std::fs::create_dir_all(&input).unwrap();
        let mut truth_events = Vec::new();
        let mut truths = BTreeMap::new();
        for seed in 0..12u64 {
            let (spec, audio) = plan_call(seed, &clips, seed % 2 == 1);
            let (wav, truth) = assemble::assemble_with(&spec, &audio).unwrap();
            let id = format!("call{seed:02}");
            std::fs::write(input.join(format!("{id}.wav")), wav).unwrap();
            let (_, events) = truth_metrics(&truth);
            truth_events.extend(events.into_iter().map(|e| (id.clone(), e)));
            truths.insert(id, truth);
        }
        let out = dir.path().join("out");
        let status =
            callqa_bin().args(["run", "--no-asr", "--input"]).arg(&input).arg("--out").arg(&out).status().unwrap();
        assert!(status.success());
        let calls = read_table(&out, "calls");
        let talk = calls
            .iter()
            .flat_map(|c| {
                let (m, _) = truth_metrics(&truths[c["call_id"].as_str().unwrap()]);
                [
                    (m.agent_talk_s.unwrap(), c["agent_talk_s"].as_f64().unwrap()),
                    (m.customer_talk_s.unwrap(), c["customer_talk_s"].as_f64().unwrap()),
                ]
            })
            .collect();
        Scored { truth_events, detected: read_table(&out, "events"), talk, calls }
    })
}

/// Recall and precision of detected events of `kind` against truth: same call, same
/// speaker, start and end within 0.5 s.
fn recall_precision(kind: EventKind) -> (f64, f64, usize) {
    let s = run_batch();
    let truth: Vec<&(String, Event)> = s.truth_events.iter().filter(|(_, e)| e.kind == kind).collect();
    let detected: Vec<&BTreeMap<String, Value>> = s.detected.iter().filter(|r| r["kind"] == kind.as_str()).collect();
    let matches = |(id, e): &(String, Event), r: &BTreeMap<String, Value>| {
        r["call_id"] == id.as_str()
            && r.get("speaker").and_then(Value::as_str) == e.speaker.map(|s| s.as_str())
            && (r["start_s"].as_f64().unwrap() - e.start_s).abs() <= 0.5
            && (r["end_s"].as_f64().unwrap() - e.end_s).abs() <= 0.5
    };
    let found = truth.iter().filter(|t| detected.iter().any(|r| matches(t, r))).count();
    let correct = detected.iter().filter(|r| truth.iter().any(|t| matches(t, r))).count();
    (found as f64 / truth.len().max(1) as f64, correct as f64 / detected.len().max(1) as f64, truth.len())
}

#[test]
fn silence_events_recall_and_precision_at_least_0_95() {
    let (recall, precision, n) = recall_precision(EventKind::Silence);
    assert!(n >= 10, "the planted calls hold only {n} silence events");
    assert!(recall >= 0.95 && precision >= 0.95, "silence recall {recall:.2} precision {precision:.2} over {n}");
}

#[test]
fn interruption_events_recall_and_precision_at_least_0_95_with_attribution() {
    let (recall, precision, n) = recall_precision(EventKind::Interruption);
    assert!(n >= 5, "the planted calls hold only {n} interruptions");
    assert!(recall >= 0.95 && precision >= 0.95, "interruption recall {recall:.2} precision {precision:.2} over {n}");
}

#[test]
fn talk_time_within_5_percent_despite_crosstalk() {
    for (truth, detected) in &run_batch().talk {
        assert!((detected - truth).abs() <= 0.05 * truth, "talk time {detected:.2} s vs true {truth:.2} s");
    }
}

#[test]
fn no_asr_rows_have_metrics_but_no_rates_or_transcripts() {
    let s = run_batch();
    assert_eq!(s.calls.len(), 12);
    for c in &s.calls {
        assert!(c.get("agent_rate").is_none_or(Value::is_null));
        assert!(c.get("model").is_none_or(Value::is_null));
        assert_eq!(c["utterances"], 0);
        assert!(c["silence_events"].as_i64().is_some());
        assert!(c["first_agent_speech_s"].as_f64().unwrap() < 1.0);
    }
    assert!(s.detected.iter().all(|r| r["kind"] != "fast_speech"));
}
