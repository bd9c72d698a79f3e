//! Micro-benchmarks of every stage that is not ASR, in audio-seconds (or rows) per second.
//! `cargo bench --bench stages`; criterion prints throughput as "elem/s" where an element is
//! one second of call audio (or one row / utterance where stated).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use callqa::assemble;
use callqa::audio::{decode, resample};
use callqa::config::Config;
use callqa::record::{Speaker, SpeechInterval, TimedToken, Utterance};
use callqa::{metrics, rules, sinks, vad};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SECONDS: usize = 60;

/// A minute of real Mandarin speech per channel (corpus clips tiled, offset between channels).
fn speech_minute() -> [Vec<f32>; 2] {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let clip = |f: &str| assemble::load_clip(&corpus.join(f)).expect("../shared/corpus beside the checkout");
    let (a, b) = (clip("FireRedTeam__FireRedASR/BAC009S0764W0121.wav"), clip("PaddlePaddle__PaddleSpeech/zh.wav"));
    let tile = |c: &[f32], gap: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(SECONDS * 16_000);
        while out.len() < SECONDS * 16_000 {
            out.extend_from_slice(c);
            out.extend(std::iter::repeat_n(0.0, gap));
        }
        out.truncate(SECONDS * 16_000);
        out
    };
    [tile(&a, 40_000), tile(&b, 60_000)]
}

fn wav_8k(channels: &[Vec<f32>], mulaw: bool) -> Vec<u8> {
    let spec = assemble::CallSpec {
        sample_rate_hz: 8000,
        codec: if mulaw { assemble::Codec::Mulaw } else { assemble::Codec::PcmS16 },
        mono: false,
        bleed_db: Some(-30.0),
        tail_s: 0.0,
        turns: vec![
            assemble::TurnSpec {
                speaker: Speaker::Agent,
                clip: PathBuf::new(),
                start_s: 0.0,
                text: String::new(),
                gain_db: 0.0,
            },
            assemble::TurnSpec {
                speaker: Speaker::Customer,
                clip: PathBuf::new(),
                start_s: 0.0,
                text: String::new(),
                gain_db: 0.0,
            },
        ],
    };
    assemble::assemble_with(&spec, channels).unwrap().0
}

fn audio_stages(c: &mut Criterion) {
    let minute = speech_minute();
    let pcm = wav_8k(&minute, false);
    let mulaw = wav_8k(&minute, true);
    let decoded = decode::decode_wav(&pcm, 3600.0).unwrap();
    let mut g = c.benchmark_group("audio");
    g.throughput(Throughput::Elements(SECONDS as u64));
    g.bench_function("decode pcm_s16 8 kHz stereo", |b| {
        b.iter(|| decode::decode_wav(black_box(&pcm), 3600.0).unwrap())
    });
    g.bench_function("decode mulaw 8 kHz stereo", |b| {
        b.iter(|| decode::decode_wav(black_box(&mulaw), 3600.0).unwrap())
    });
    g.bench_function("resample 8 -> 16 kHz stereo", |b| {
        b.iter(|| resample::to_16k(black_box(&decoded.channels), 8000).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("speech activity");
    g.throughput(Throughput::Elements(SECONDS as u64));
    g.bench_function("earshot one channel", |b| b.iter(|| vad::detect(black_box(&minute[0]), &Default::default())));
    let refs: Vec<&[f32]> = minute.iter().map(Vec::as_slice).collect();
    g.bench_function("two channels with crosstalk removal", |b| {
        b.iter(|| vad::detect_call(black_box(&refs), &Default::default()))
    });
    // Beside earshot on the same minute: what looking for hold music adds to the agent channel.
    g.bench_function("music and tones one channel", |b| {
        b.iter(|| vad::music::music_intervals(black_box(&minute[0]), 3.0))
    });
    g.finish();
}

fn utterances(n: usize) -> Vec<Utterance> {
    let sentence = "您好请问有什么可以帮您这个问题我帮您查一下请稍等谢谢您的耐心等待";
    (0..n)
        .map(|i| {
            let start = i as f64 * 4.0;
            let tokens = sentence
                .chars()
                .enumerate()
                .map(|(k, ch)| TimedToken {
                    text: ch.to_string(),
                    start_s: start + k as f64 * 0.1,
                    end_s: start + k as f64 * 0.1 + 0.1,
                })
                .collect();
            Utterance {
                speaker: if i % 2 == 0 { Speaker::Agent } else { Speaker::Customer },
                start_s: start,
                end_s: start + 3.5,
                text: sentence.into(),
                avg_logprob: -0.3,
                no_speech_prob: 0.01,
                tokens,
            }
        })
        .collect()
}

fn scoring(c: &mut Criterion) {
    let config = Config::default();
    // An hour of call: alternating turns with pauses.
    let hour = 3600.0;
    let speech: Vec<(Speaker, Vec<SpeechInterval>)> = [Speaker::Agent, Speaker::Customer]
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            (
                s,
                (0..450)
                    .map(|i| SpeechInterval {
                        start_s: i as f64 * 8.0 + k as f64 * 3.5,
                        end_s: i as f64 * 8.0 + k as f64 * 3.5 + 3.8,
                    })
                    .collect(),
            )
        })
        .collect();
    let utts = utterances(900);
    let mut g = c.benchmark_group("scoring");
    g.throughput(Throughput::Elements(hour as u64));
    g.bench_function("metrics, one hour of speech intervals", |b| {
        b.iter(|| metrics::compute(black_box(&speech), &utts, Some("zh"), &[], &config.metric_settings()))
    });
    g.finish();
    let mut g = c.benchmark_group("phrase rules");
    let few = utterances(60);
    g.throughput(Throughput::Elements(few.len() as u64));
    let call = rules::CallText { utterances: &few, speech: &speech, duration_s: 240.0, language: "zh", holds: &[] };
    g.bench_function("default lexicon, exact + fuzzy, per utterance", |b| {
        b.iter(|| rules::evaluate(&config.phrases, &config.matching, black_box(&call)))
    });
    g.finish();
}

fn parquet(c: &mut Criterion) {
    let rows = 100_000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("call_id", DataType::Utf8, false),
        Field::new("start_s", DataType::Float64, false),
        Field::new("text", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("call-{}", i / 50)))),
        Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.5))),
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("您好请问有什么可以帮您 {i}")))),
    ];
    let batch = sinks::parquet::batch("utterances", schema, columns).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("parquet");
    g.throughput(Throughput::Elements(rows as u64));
    g.bench_function("write 100k utterance rows (zstd, atomic)", |b| {
        b.iter(|| sinks::parquet::write_file(&dir.path().join("u.parquet"), black_box(&batch)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = audio_stages, scoring, parquet
}
criterion_main!(benches);
