//! Loudness and raised voices (issue 16, item 2) on calls assembled from real Mandarin
//! recordings: every clip levelled to the same integrated loudness, some turns played 10 dB
//! louder. `callqa run --no-asr` must find those turns (raised_voice events of the right
//! speaker) and nothing else, and report each channel's loudness in `calls`.

mod common;

use std::collections::BTreeMap;

use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::record::Speaker;
use common::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const CLIPS: [&str; 12] = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "modelscope__FunASR/asr_example.wav",
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "k2-fsa__sherpa/funasr-nano_far_2.wav",
    "k2-fsa__sherpa/funasr-nano_far_4.wav",
    "k2-fsa__sherpa/funasr-nano_far_5.wav",
    "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    "modelscope__FunASR/paraformer_example_2.wav",
    "wenet-e2e__wenet/NST_example_ID001.wav",
];
const LEVEL_LUFS: f64 = -26.0;
const RAISE_DB: f64 = 10.0;
/// Seeds nothing was tuned on.
const SEEDS: [u64; 3] = [16, 17, 18];

struct Raised {
    call_id: String,
    speaker: Speaker,
    start_s: f64,
    end_s: f64,
}

#[test]
fn raised_turns_are_found_and_channel_loudness_is_reported() {
    let clips: Vec<(String, Vec<f32>, f64)> = CLIPS
        .iter()
        .map(|f| {
            let samples = assemble::load_clip(&corpus(f)).unwrap();
            let lufs = callqa::loudness::integrated_lufs(&samples).unwrap();
            (f.to_string(), samples, lufs)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("calls");
    std::fs::create_dir_all(&input).unwrap();
    let mut truth: Vec<Raised> = Vec::new();
    let mut normal_turns = 0;
    for (seed, k) in SEEDS.iter().flat_map(|&seed| (0..6).map(move |k| (seed, k))) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 100 + k);
        // Agent and customer alternate: 6 agent turns (2 raised), 5 customer turns (1 raised).
        let mut order: Vec<usize> = (0..clips.len()).collect();
        order.shuffle(&mut rng);
        let speakers: Vec<Speaker> =
            (0..11).map(|i| if i % 2 == 0 { Speaker::Agent } else { Speaker::Customer }).collect();
        let mut raised_agent: Vec<usize> = (0..6).collect();
        raised_agent.shuffle(&mut rng);
        let raised_customer = rng.random_range(0..5);
        let (mut turns, mut samples, mut at) = (Vec::new(), Vec::new(), 0.5);
        let call_id = format!("loud{seed}_{k}");
        for (i, speaker) in speakers.iter().enumerate() {
            let (file, clip, lufs) = &clips[order[i]];
            let raised = match speaker {
                Speaker::Agent => raised_agent[..2].contains(&(i / 2)),
                _ => i / 2 == raised_customer,
            };
            let gain_db = LEVEL_LUFS - lufs + if raised { RAISE_DB } else { 0.0 };
            let seconds = clip.len() as f64 / 16_000.0;
            if raised {
                truth.push(Raised { call_id: call_id.clone(), speaker: *speaker, start_s: at, end_s: at + seconds });
            } else {
                normal_turns += 1;
            }
            turns.push(TurnSpec {
                speaker: *speaker,
                clip: corpus(file),
                start_s: at,
                text: String::new(),
                gain_db: gain_db as f32,
            });
            samples.push(clip.clone());
            at += seconds + 0.8;
        }
        let spec = CallSpec {
            sample_rate_hz: 8000,
            codec: Codec::PcmS16,
            mono: false,
            bleed_db: (k % 2 == 0).then_some(-30.0),
            tail_s: 1.0,
            turns,
        };
        let (wav, _) = assemble::assemble_with(&spec, &samples).unwrap();
        std::fs::write(input.join(format!("{call_id}.wav")), wav).unwrap();
    }
    let out = dir.path().join("out");
    let output = callqa_bin().args(["run", "--no-asr", "--input"]).arg(&input).arg("--out").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let events: Vec<_> = read_table(&out, "events").into_iter().filter(|e| e["kind"] == "raised_voice").collect();
    let overlaps = |e: &BTreeMap<String, serde_json::Value>, t: &Raised| {
        e["call_id"] == t.call_id.as_str()
            && e["speaker"] == t.speaker.as_str()
            && e["start_s"].as_f64().unwrap() < t.end_s
            && e["end_s"].as_f64().unwrap() > t.start_s
    };
    let true_events = events.iter().filter(|e| truth.iter().any(|t| overlaps(e, t))).count();
    let found = truth.iter().filter(|t| events.iter().any(|e| overlaps(e, t))).count();
    let precision = true_events as f64 / events.len().max(1) as f64;
    let recall = found as f64 / truth.len() as f64;
    eprintln!(
        "measured raised voice: {} turns raised, {normal_turns} not; {} events; precision {precision:.3} recall {recall:.3}",
        truth.len(),
        events.len()
    );
    assert!(precision >= 0.95 && recall >= 0.95, "precision {precision:.3}, recall {recall:.3}");

    // Every clip was levelled to -26 LUFS, some turns 10 dB up: the channel's integrated
    // loudness lies between, and the raised turns widen its range.
    for call in read_table(&out, "calls") {
        for speaker in ["agent", "customer"] {
            let lufs = call[&format!("{speaker}_loudness_lufs")].as_f64().unwrap();
            assert!((LEVEL_LUFS - 2.0..=LEVEL_LUFS + RAISE_DB).contains(&lufs), "{speaker}: {lufs} LUFS");
            assert!(call[&format!("{speaker}_loudness_range_lu")].as_f64().unwrap() > 3.0);
        }
    }
}
