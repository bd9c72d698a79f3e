//! Holds and dead air (issue 16, item 1) on calls assembled from real recordings: English
//! calls whose agent says the hold and return phrases in espeak-ng speech between real clips,
//! and Mandarin calls of real clips only. Planted in every call, two long agent silences, each
//! one of: hold phrase then silence, hold phrase then music, a hold tone without a phrase,
//! music without a phrase, or dead air (nothing). `callqa run` with the model must report the
//! first four as `hold` events and the last as dead air (`silence`), and the etiquette rules
//! keyed on holds must ask for exactly the phrases the agent left out.

mod common;

use std::collections::BTreeMap;

use callqa::assemble::{self, CallSpec, Codec, TurnSpec};
use callqa::record::Speaker;
use common::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ENGLISH: [&str; 7] = [
    "k2-fsa__sherpa/funasr-nano_noise_en.wav",
    "ggerganov__whisper.cpp/jfk.wav",
    "k2-fsa__icefall/Lab41-SRI-VOiCES-src-sp0307-ch127535-sg0042.wav",
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "lhotse-speech__lhotse/ES2011a.Headset-0-40s-46s.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "wenet-e2e__wenet/librispeech-1995-1837-0001.wav",
];
const MANDARIN: [&str; 8] = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "modelscope__FunASR/asr_example.wav",
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "k2-fsa__sherpa/funasr-nano_far_2.wav",
    "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    "modelscope__FunASR/paraformer_example_2.wav",
];
const HOLD_PHRASE: &str = "One moment please, let me check that for you.";
const RETURN_PHRASE: &str = "Thanks for waiting. I have found your order.";
const LEVEL_LUFS: f64 = -26.0;
/// Seeds nothing was tuned on (the detector was tuned on 19-21).
const SEEDS: [u64; 3] = [23, 24, 25];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Gap {
    PhraseThenSilence,
    PhraseThenMusic,
    ToneWithoutPhrase,
    MusicWithoutPhrase,
    DeadAir,
}

impl Gap {
    fn is_hold(self) -> bool {
        self != Gap::DeadAir
    }
    fn has_hold_phrase(self) -> bool {
        matches!(self, Gap::PhraseThenSilence | Gap::PhraseThenMusic)
    }
    /// The agent comes back with the return phrase (English calls only).
    fn has_return_phrase(self) -> bool {
        matches!(self, Gap::PhraseThenSilence | Gap::ToneWithoutPhrase)
    }
}

#[derive(Debug)]
struct Planted {
    call_id: String,
    english: bool,
    gap: Gap,
    start_s: f64,
    end_s: f64,
}

struct Clip {
    samples: Vec<f32>,
    gain_db: f32,
}

fn levelled(samples: Vec<f32>) -> Clip {
    let lufs = callqa::loudness::integrated_lufs(&samples).unwrap();
    Clip { samples, gain_db: (LEVEL_LUFS - lufs) as f32 }
}

/// A call: agent and customer talk, then each gap between an agent turn and the agent's next.
fn assemble_call(
    call_id: &str,
    english: bool,
    gaps: &[Gap],
    pool: &[Clip],
    phrases: &[Clip; 2],
    rng: &mut impl Rng,
) -> (Vec<u8>, Vec<Planted>) {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.shuffle(rng);
    let mut next_clip = order.into_iter().cycle().map(|i| &pool[i]);
    let (mut turns, mut samples, mut planted, mut at) = (Vec::new(), Vec::new(), Vec::new(), 0.5);
    // Place a clip at `at` and move `at` to its end.
    let mut say = |speaker: Speaker, clip: &Clip, at: &mut f64| {
        turns.push(TurnSpec {
            speaker,
            clip: Default::default(),
            start_s: *at,
            text: String::new(),
            gain_db: clip.gain_db,
        });
        samples.push(clip.samples.clone());
        *at += clip.samples.len() as f64 / 16_000.0;
    };
    let pause = 0.8;
    say(Speaker::Agent, next_clip.next().unwrap(), &mut at);
    at += pause;
    say(Speaker::Customer, next_clip.next().unwrap(), &mut at);
    at += pause;
    for (k, &gap) in gaps.iter().enumerate() {
        let lead_in = if gap.has_hold_phrase() { &phrases[0] } else { next_clip.next().unwrap() };
        say(Speaker::Agent, lead_in, &mut at);
        let start_s = at;
        let seconds = if gap == Gap::DeadAir { rng.random_range(12.0..20.0) } else { rng.random_range(14.0..32.0) };
        let filler = match gap {
            Gap::PhraseThenMusic | Gap::MusicWithoutPhrase => {
                Some(assemble::hold_music(seconds - 2.0, rng.random::<u64>()))
            }
            Gap::ToneWithoutPhrase => Some(assemble::hold_tone(seconds - 2.0, 450.0, 0.4, 2.6 + k as f64)),
            _ => None,
        };
        if let Some(samples) = filler {
            say(Speaker::Agent, &Clip { samples, gain_db: 0.0 }, &mut (start_s + 1.0));
        }
        at = start_s + seconds;
        planted.push(Planted { call_id: call_id.into(), english, gap, start_s, end_s: at });
        let comeback = if english && gap.has_return_phrase() { &phrases[1] } else { next_clip.next().unwrap() };
        say(Speaker::Agent, comeback, &mut at);
        at += pause;
        say(Speaker::Customer, next_clip.next().unwrap(), &mut at);
        at += pause;
    }
    say(Speaker::Agent, next_clip.next().unwrap(), &mut at);
    let spec = CallSpec { sample_rate_hz: 8000, codec: Codec::PcmS16, mono: false, bleed_db: None, tail_s: 1.0, turns };
    let (wav, _) = assemble::assemble_with(&spec, &samples).unwrap();
    (wav, planted)
}

fn iou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let inter = (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
    inter / (a.1.max(b.1) - a.0.min(b.0))
}

fn span(e: &BTreeMap<String, Value>) -> (f64, f64) {
    (e["start_s"].as_f64().unwrap(), e["end_s"].as_f64().unwrap())
}

/// Precision and recall of `events` against `truth`, matched by intersection over union.
fn precision_recall(events: &[&BTreeMap<String, Value>], truth: &[&Planted], min_iou: f64) -> (f64, f64) {
    let matches = |e: &BTreeMap<String, Value>, t: &Planted| {
        e["call_id"] == t.call_id.as_str() && iou(span(e), (t.start_s, t.end_s)) >= min_iou
    };
    let true_events = events.iter().filter(|e| truth.iter().any(|t| matches(e, t))).count();
    let found = truth.iter().filter(|t| events.iter().any(|e| matches(e, t))).count();
    (true_events as f64 / events.len().max(1) as f64, found as f64 / truth.len().max(1) as f64)
}

#[test]
fn planted_holds_are_found_dead_air_stays_dead_air_and_etiquette_follows_holds() {
    let load = |files: &[&str]| -> Vec<Clip> {
        files.iter().map(|f| levelled(assemble::load_clip(&corpus(f)).unwrap())).collect()
    };
    let (english, mandarin) = (load(&ENGLISH), load(&MANDARIN));
    let dir = tempfile::tempdir().unwrap();
    let spoken = |text: &str, name: &str| {
        let path = dir.path().join(name);
        espeak(text, &path);
        levelled(assemble::load_clip(&path).unwrap())
    };
    let phrases = [spoken(HOLD_PHRASE, "hold.wav"), spoken(RETURN_PHRASE, "return.wav")];
    let input = dir.path().join("calls");
    std::fs::create_dir_all(&input).unwrap();
    let all_gaps =
        [Gap::PhraseThenSilence, Gap::PhraseThenMusic, Gap::ToneWithoutPhrase, Gap::MusicWithoutPhrase, Gap::DeadAir];
    let mandarin_gaps = [Gap::ToneWithoutPhrase, Gap::MusicWithoutPhrase, Gap::DeadAir];
    let mut planted: Vec<Planted> = Vec::new();
    for (seed, k) in SEEDS.iter().flat_map(|&seed| (0..6).map(move |k| (seed, k))) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 100 + k);
        let english_call = k < 4;
        let gaps: Vec<Gap> = if english_call {
            vec![all_gaps[(2 * k as usize) % 5], all_gaps[(2 * k as usize + 1 + seed as usize) % 5]]
        } else {
            vec![mandarin_gaps[(k as usize + seed as usize) % 3], mandarin_gaps[(k as usize + seed as usize + 1) % 3]]
        };
        let call_id = format!("hold{seed}_{k}");
        let pool = if english_call { &english } else { &mandarin };
        let (wav, truth) = assemble_call(&call_id, english_call, &gaps, pool, &phrases, &mut rng);
        std::fs::write(input.join(format!("{call_id}.wav")), wav).unwrap();
        planted.extend(truth);
    }
    let out = dir.path().join("out");
    let output = callqa_bin().args(["run", "--input"]).arg(&input).arg("--out").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let events = read_table(&out, "events");
    let of_kind = |kind: &str| events.iter().filter(|e| e["kind"] == kind).collect::<Vec<_>>();

    let holds = of_kind("hold");
    let planted_holds: Vec<&Planted> = planted.iter().filter(|p| p.gap.is_hold()).collect();
    let (precision, recall) = precision_recall(&holds, &planted_holds, 0.8);
    let dead_air = of_kind("silence");
    let planted_dead_air: Vec<&Planted> = planted.iter().filter(|p| !p.gap.is_hold()).collect();
    let (dead_precision, dead_recall) = precision_recall(&dead_air, &planted_dead_air, 0.8);
    let edge_error: Vec<f64> = planted_holds
        .iter()
        .filter_map(|t| {
            let e = holds
                .iter()
                .find(|e| e["call_id"] == t.call_id.as_str() && iou(span(e), (t.start_s, t.end_s)) > 0.5)?;
            Some(((span(e).0 - t.start_s).abs() + (span(e).1 - t.end_s).abs()) / 2.0)
        })
        .collect();
    eprintln!(
        "measured holds: {} planted, {} events, precision {precision:.3} recall {recall:.3}, mean edge error {:.2} s; \
         dead air: {} planted, {} events, precision {dead_precision:.3} recall {dead_recall:.3}",
        planted_holds.len(),
        holds.len(),
        edge_error.iter().sum::<f64>() / edge_error.len().max(1) as f64,
        planted_dead_air.len(),
        dead_air.len()
    );
    assert!(precision >= 0.95 && recall >= 0.95, "holds: precision {precision:.3}, recall {recall:.3}");
    assert!(dead_precision >= 0.95 && dead_recall >= 0.95, "dead air: {dead_precision:.3}, {dead_recall:.3}");
    assert!(edge_error.iter().all(|e| *e < 1.0), "hold edges within a second: {edge_error:?}");
    let utterances = read_table(&out, "utterances");
    // What the agent said from `from_s` to `to_s` of a call, lower case.
    let agent_said = |call_id: &str, from_s: f64, to_s: f64| -> String {
        utterances
            .iter()
            .filter(|u| u["call_id"] == call_id && u["speaker"] == "agent")
            .filter(|u| span(u).0 >= from_s && span(u).0 < to_s)
            .map(|u| u["text"].as_str().unwrap().to_lowercase())
            .collect()
    };
    // What started each hold is named: the phrase, or music and tones. A hold phrase goes
    // unnamed only where Whisper misheard it (espeak-ng at 8 kHz: "One moment please, let me
    // check that for you" -> "moment please let me care for you"), so that none of the hold
    // phrases is in what the agent said before the hold.
    let hold_phrases = callqa::metrics::hold::HoldSettings::default().phrases.remove("en").unwrap();
    let mut misheard_holds: Vec<&Planted> = Vec::new();
    for t in &planted_holds {
        let e = holds.iter().find(|e| e["call_id"] == t.call_id.as_str() && iou(span(e), (t.start_s, t.end_s)) >= 0.8);
        let detail = e.map_or("", |e| e["detail"].as_str().unwrap());
        let music = matches!(t.gap, Gap::PhraseThenMusic | Gap::MusicWithoutPhrase | Gap::ToneWithoutPhrase);
        assert_eq!(detail.contains("music or a tone"), music, "{t:?}: {detail}");
        let named = detail.contains("after \"");
        if t.gap.has_hold_phrase() && !named {
            let before = agent_said(&t.call_id, t.start_s - 10.0, t.start_s);
            assert!(!hold_phrases.iter().any(|p| before.contains(p.as_str())), "{t:?}: the detector missed {before:?}");
            misheard_holds.push(t);
        } else {
            assert_eq!(named, t.gap.has_hold_phrase(), "{t:?}: {detail}");
        }
    }
    let phrase_holds = planted_holds.iter().filter(|t| t.gap.has_hold_phrase()).count();
    eprintln!("measured hold phrases: {} of {phrase_holds} misheard", misheard_holds.len());
    assert!(misheard_holds.len() <= 1, "{misheard_holds:?} of {phrase_holds} hold phrases misheard");

    // Etiquette keyed on holds: "please hold" is missing before every hold without a hold
    // phrase (and before a misheard one, if the rule hears no phrase there either), "thank you
    // for waiting" after at least those without a return phrase, every
    // such event sits at a hold (never at dead air), and an extra one only where the return
    // phrase was misheard (espeak-ng at 8 kHz: "thanks for waiting" -> "and for waving").
    let missing = |rule: &str| -> Vec<&BTreeMap<String, Value>> {
        of_kind("required_phrase_missing")
            .into_iter()
            .filter(|e| e["rule_id"].as_str().unwrap().ends_with(rule))
            .collect()
    };
    let at_hold = |e: &BTreeMap<String, Value>, before: bool| -> Option<&Planted> {
        let edge = if before { span(e).1 } else { span(e).0 };
        planted.iter().find(|t| {
            t.call_id == e["call_id"].as_str().unwrap() && (edge - if before { t.start_s } else { t.end_s }).abs() < 2.0
        })
    };
    let please: Vec<&BTreeMap<String, Value>> = [missing("please_wait"), missing("please_hold")].concat();
    let please_at: Vec<&Planted> = please.iter().filter_map(|e| at_hold(e, true)).collect();
    assert_eq!(please_at.len(), please.len(), "every missing please-hold sits before a planted gap");
    let phrase_misheard = |t: &Planted| misheard_holds.iter().any(|m| std::ptr::eq(*m, t));
    assert!(
        please_at.iter().all(|t| t.gap.is_hold() && (!t.gap.has_hold_phrase() || phrase_misheard(t))),
        "{please_at:?}"
    );
    assert!(
        planted_holds
            .iter()
            .filter(|t| !t.gap.has_hold_phrase())
            .all(|t| please_at.iter().any(|p| std::ptr::eq(*p, *t))),
        "{please_at:?}"
    );
    let thanks = missing("thanks_for_waiting");
    let thanks_at: Vec<&Planted> = thanks.iter().filter_map(|e| at_hold(e, false)).collect();
    assert_eq!(thanks_at.len(), thanks.len(), "every missing thanks sits after a planted gap");
    assert!(thanks_at.iter().all(|t| t.gap.is_hold()), "{thanks_at:?}");
    let without_return: Vec<&&Planted> =
        planted_holds.iter().filter(|t| !(t.english && t.gap.has_return_phrase())).collect();
    assert!(without_return.iter().all(|t| thanks_at.iter().any(|f| std::ptr::eq(*f, **t))), "{thanks_at:?}");
    let misheard: Vec<&&Planted> = thanks_at.iter().filter(|t| t.english && t.gap.has_return_phrase()).collect();
    for t in &misheard {
        let heard = agent_said(&t.call_id, t.end_s - 1.0, t.end_s + 15.0);
        assert!(!heard.contains("for waiting"), "{t:?}: the rule missed {heard:?}");
    }
    eprintln!(
        "measured etiquette: please-hold missing at {} holds, thanks missing at {} ({} of them misheard returns)",
        please.len(),
        thanks.len(),
        misheard.len()
    );

    // The calls table counts them.
    for call in read_table(&out, "calls") {
        let id = call["call_id"].as_str().unwrap();
        let held: Vec<&&Planted> = planted_holds.iter().filter(|t| t.call_id == id).collect();
        assert_eq!(call["hold_count"].as_i64().unwrap(), held.len() as i64, "{id}");
        let truth_s: f64 = held.iter().map(|t| t.end_s - t.start_s).sum();
        assert!((call["hold_s"].as_f64().unwrap() - truth_s).abs() <= 1.5 * held.len() as f64, "{id}");
    }
}
