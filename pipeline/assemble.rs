//! Test-call assembly: recorded or synthesised utterances -> a call WAV with exact ground truth.
//!
//! Used to build fixtures, integration tests and benchmarks from real recordings. Each clip
//! is trimmed to its speech (leading/trailing silence removed by energy), placed on the agent
//! or customer channel at a chosen time, optionally leaked into the other channel (`bleed_db`,
//! like telephone crosstalk), and the call is encoded at the chosen rate and codec. The truth
//! lists who speaks when and what.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audio::{decode, g711, resample};
use crate::record::Speaker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    PcmS16,
    Mulaw,
    Alaw,
}

/// `callqa assemble` spec (TOML).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    #[serde(default = "default_rate")]
    pub sample_rate_hz: u32,
    #[serde(default = "default_codec")]
    pub codec: Codec,
    /// Mix both parties onto one channel.
    #[serde(default)]
    pub mono: bool,
    /// Leak each channel into the other at this level (dB, e.g. -25); none by default.
    #[serde(default)]
    pub bleed_db: Option<f32>,
    /// Silence after the last turn, seconds.
    #[serde(default = "default_tail")]
    pub tail_s: f64,
    pub turns: Vec<TurnSpec>,
}

fn default_rate() -> u32 {
    8000
}
fn default_codec() -> Codec {
    Codec::PcmS16
}
fn default_tail() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSpec {
    pub speaker: Speaker,
    /// WAV file, relative to the spec's folder.
    pub clip: PathBuf,
    pub start_s: f64,
    /// What is said (reference transcript).
    #[serde(default)]
    pub text: String,
    /// Gain applied to the clip, dB. Default 0.
    #[serde(default)]
    pub gain_db: f32,
}

/// One turn as it ended up in the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthTurn {
    pub speaker: Speaker,
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub duration_s: f64,
    pub sample_rate_hz: u32,
    pub mono: bool,
    pub turns: Vec<TruthTurn>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("clip {}: {reason}", path.display())]
    Clip { path: PathBuf, reason: String },
    #[error("spec: {0}")]
    Spec(String),
}

const RATE: u32 = 16_000;

/// Load a clip as 16 kHz mono (first channel), trimmed to its speech.
pub fn load_clip(path: &Path) -> Result<Vec<f32>, AssembleError> {
    let fail = |reason: String| AssembleError::Clip { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let audio = decode::decode_wav(&bytes, 3600.0).map_err(|e| fail(e.to_string()))?;
    let first = vec![audio.channels[0].clone()];
    let mut samples =
        resample::resample(&first, audio.sample_rate_hz, RATE).map_err(|e| fail(e.to_string()))?.remove(0);
    let (from, to) = speech_bounds(&samples);
    samples.truncate(to);
    samples.drain(..from);
    Ok(samples)
}

/// Synthetic hold music, 16 kHz: a melody of harmonic notes (a quarter to one second each,
/// with a slight vibrato) over two-second chords and a hi-hat every half second. Level about
/// that of the corpus clips levelled for tests. No recorded music ships in the corpus; this
/// stands in for it in tests and benchmarks.
pub fn hold_music(seconds: f64, seed: u64) -> Vec<f32> {
    use std::f64::consts::TAU;
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407) | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    const SCALE: [f64; 8] = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3];
    let len = (seconds * RATE as f64) as usize;
    let mut out = vec![0.0f64; len];
    let mut add = |start_s: f64, samples: Vec<f64>| {
        let at = (start_s * RATE as f64) as usize;
        for (o, s) in out.iter_mut().skip(at).zip(samples) {
            *o += s;
        }
    };
    let mut at = 0.0;
    while at < seconds {
        let duration = [0.25, 0.5, 0.5, 1.0][(random() * 4.0) as usize];
        let hz = SCALE[(random() * 8.0) as usize] * if random() < 0.5 { 1.0 } else { 2.0 };
        let note = (0..(duration * RATE as f64) as usize)
            .map(|i| {
                let t = i as f64 / RATE as f64;
                let envelope = (t / 0.02).min(1.0) * (-1.5 * t).exp();
                let phase = TAU * hz * t * (1.0 + 0.003 * (TAU * 5.0 * t).sin());
                envelope * (1..=5).map(|k| 0.3 / k as f64 * (phase * k as f64).sin()).sum::<f64>()
            })
            .collect();
        add(at, note);
        at += duration;
    }
    for chord in 0..(seconds / 2.0).ceil() as usize {
        let root = SCALE[(random() * 8.0) as usize] / 2.0;
        let samples = (0..2 * RATE as usize)
            .map(|i| {
                let t = i as f64 / RATE as f64;
                [1.0, 1.26, 1.5].iter().map(|r| 0.1 * (TAU * root * r * t).sin()).sum::<f64>()
            })
            .collect();
        add(chord as f64 * 2.0, samples);
    }
    for beat in 0..(seconds * 2.0) as usize {
        let hat =
            (0..RATE as usize / 20).map(|i| 0.05 * (random() * 2.0 - 1.0) * (-(i as f64) / 200.0).exp()).collect();
        add(beat as f64 * 0.5, hat);
    }
    out.into_iter().map(|s| (s * 0.25) as f32).collect()
}

/// A hold tone, 16 kHz: `hz` for `on_s`, silent for `off_s`, repeated (continuous when
/// `off_s` is 0).
pub fn hold_tone(seconds: f64, hz: f64, on_s: f64, off_s: f64) -> Vec<f32> {
    (0..(seconds * RATE as f64) as usize)
        .map(|i| {
            let t = i as f64 / RATE as f64;
            let on = t % (on_s + off_s) < on_s;
            if on {
                (0.1 * (std::f64::consts::TAU * hz * t).sin()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// First and last 10 ms frame louder than 5% of the loudest frame's RMS (-26 dB).
pub fn speech_bounds(samples: &[f32]) -> (usize, usize) {
    const FRAME: usize = 160;
    let rms: Vec<f32> =
        samples.chunks(FRAME).map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt()).collect();
    let peak = rms.iter().copied().fold(0.0f32, f32::max);
    let loud = |r: &f32| *r > peak * 0.05;
    match (rms.iter().position(loud), rms.iter().rposition(loud)) {
        (Some(first), Some(last)) => (first * FRAME, ((last + 1) * FRAME).min(samples.len())),
        _ => (0, 0),
    }
}

/// Encode per-channel samples in [-1, 1] as a WAV file (16-bit PCM or G.711).
pub fn encode_wav(channels: &[Vec<f32>], rate: u32, codec: Codec) -> Vec<u8> {
    let frames = channels[0].len();
    let to_i16 = |s: f32| (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
    if codec == Codec::PcmS16 {
        let spec = hound::WavSpec {
            channels: channels.len() as u16,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut cursor, spec).expect("in-memory WAV");
        for i in 0..frames {
            for ch in channels {
                writer.write_sample(to_i16(ch[i])).expect("in-memory WAV");
            }
        }
        writer.finalize().expect("in-memory WAV");
        return cursor.into_inner();
    }
    let (tag, compress): (u16, fn(i16) -> u8) = match codec {
        Codec::Mulaw => (7, g711::linear_to_mulaw),
        _ => (6, g711::linear_to_alaw),
    };
    let data: Vec<u8> = (0..frames).flat_map(|i| channels.iter().map(move |ch| compress(to_i16(ch[i])))).collect();
    let n = channels.len() as u16;
    let mut out = Vec::with_capacity(data.len() + 58);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 26 + 8 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * n as u32).to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// Build the call. `clips` gives each turn's 16 kHz speech (already trimmed).
pub fn assemble_with(spec: &CallSpec, clips: &[Vec<f32>]) -> Result<(Vec<u8>, Truth), AssembleError> {
    if spec.turns.len() != clips.len() {
        return Err(AssembleError::Spec("one clip per turn".into()));
    }
    let mut truth: Vec<TruthTurn> = spec
        .turns
        .iter()
        .zip(clips)
        .map(|(t, clip)| TruthTurn {
            speaker: t.speaker,
            start_s: t.start_s,
            end_s: t.start_s + clip.len() as f64 / RATE as f64,
            text: t.text.clone(),
        })
        .collect();
    let duration_s = truth.iter().map(|t| t.end_s).fold(0.0, f64::max) + spec.tail_s;
    let len = (duration_s * RATE as f64).ceil() as usize;
    let mut channels = vec![vec![0.0f32; len]; 2];
    for (turn, clip) in spec.turns.iter().zip(clips) {
        let ch = match turn.speaker {
            Speaker::Agent => 0,
            Speaker::Customer => 1,
            Speaker::Mixed => return Err(AssembleError::Spec("turn speaker must be agent or customer".into())),
        };
        let gain = 10f32.powf(turn.gain_db / 20.0);
        let at = (turn.start_s * RATE as f64).round() as usize;
        for (i, &s) in clip.iter().enumerate() {
            channels[ch][at + i] += s * gain;
        }
    }
    if let Some(db) = spec.bleed_db {
        let leak = 10f32.powf(db / 20.0);
        let (a, c) = (channels[0].clone(), channels[1].clone());
        for i in 0..len {
            channels[0][i] += c[i] * leak;
            channels[1][i] += a[i] * leak;
        }
    }
    if spec.mono {
        let mixed: Vec<f32> = (0..len).map(|i| channels[0][i] + channels[1][i]).collect();
        channels = vec![mixed];
        for t in &mut truth {
            t.speaker = Speaker::Mixed;
        }
    }
    let out =
        resample::resample(&channels, RATE, spec.sample_rate_hz).map_err(|e| AssembleError::Spec(e.to_string()))?;
    truth.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    Ok((
        encode_wav(&out, spec.sample_rate_hz, spec.codec),
        Truth { duration_s, sample_rate_hz: spec.sample_rate_hz, mono: spec.mono, turns: truth },
    ))
}

/// Build the call from clip files (paths relative to `base`).
pub fn assemble(spec: &CallSpec, base: &Path) -> Result<(Vec<u8>, Truth), AssembleError> {
    let clips = spec.turns.iter().map(|t| load_clip(&base.join(&t.clip))).collect::<Result<Vec<_>, _>>()?;
    assemble_with(spec, &clips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beep(seconds: f64) -> Vec<f32> {
        (0..(seconds * RATE as f64) as usize).map(|i| 0.5 * (i as f32 * 0.3).sin()).collect()
    }

    fn spec(codec: Codec, mono: bool) -> CallSpec {
        CallSpec {
            sample_rate_hz: 8000,
            codec,
            mono,
            bleed_db: None,
            tail_s: 0.5,
            turns: vec![
                TurnSpec { speaker: Speaker::Agent, clip: "a".into(), start_s: 0.5, text: "a".into(), gain_db: 0.0 },
                TurnSpec { speaker: Speaker::Customer, clip: "b".into(), start_s: 1.0, text: "b".into(), gain_db: 0.0 },
            ],
        }
    }

    #[test]
    fn turns_land_on_their_channel_at_their_time() {
        for codec in [Codec::PcmS16, Codec::Mulaw, Codec::Alaw] {
            let (wav, truth) = assemble_with(&spec(codec, false), &[beep(1.0), beep(0.5)]).unwrap();
            let audio = decode::decode_wav(&wav, 60.0).unwrap();
            assert_eq!(audio.channels.len(), 2);
            assert_eq!(audio.sample_rate_hz, 8000);
            assert!((truth.turns[0].end_s - 1.5).abs() < 1e-9 && (truth.duration_s - 2.0).abs() < 1e-9);
            let energy = |ch: &[f32], from_s: f64, to_s: f64| {
                ch[(from_s * 8000.0) as usize..(to_s * 8000.0) as usize].iter().map(|s| s * s).sum::<f32>()
            };
            assert!(energy(&audio.channels[0], 0.6, 1.4) > 100.0);
            assert!(energy(&audio.channels[0], 1.6, 1.9) < 0.01);
            assert!(energy(&audio.channels[1], 0.0, 0.9) < 0.01, "{codec:?}");
            assert!(energy(&audio.channels[1], 1.1, 1.4) > 50.0);
        }
    }

    #[test]
    fn mono_mixes_and_bleed_leaks() {
        let (wav, truth) = assemble_with(&spec(Codec::PcmS16, true), &[beep(1.0), beep(0.5)]).unwrap();
        assert_eq!(decode::decode_wav(&wav, 60.0).unwrap().channels.len(), 1);
        assert!(truth.turns.iter().all(|t| t.speaker == Speaker::Mixed));
        let mut bleed = spec(Codec::PcmS16, false);
        bleed.bleed_db = Some(-20.0);
        let (wav, _) = assemble_with(&bleed, &[beep(1.0), beep(0.5)]).unwrap();
        let audio = decode::decode_wav(&wav, 60.0).unwrap();
        let peak = audio.channels[1][(0.6 * 8000.0) as usize..(0.9 * 8000.0) as usize]
            .iter()
            .fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.05).abs() < 0.01, "bleed peak {peak}");
    }

    #[test]
    fn speech_bounds_trim_silence() {
        let mut s = vec![0.0f32; 1600];
        s.extend(beep(0.5));
        s.extend(vec![0.001f32; 3200]);
        let (from, to) = speech_bounds(&s);
        assert_eq!(from, 1600);
        assert_eq!(to, 1600 + 8000);
    }
}
