//! Speech activity: one 16 kHz channel -> speech intervals.
//!
//! Frame scores come from earshot (a small neural VAD made for speech, 16 ms frames); turning
//! scores into intervals is a pure function ([`intervals_from_scores`]) with hysteresis and
//! hangover: a speech run starts on a frame above `threshold`, survives pauses shorter than
//! `hangover_s`, and is kept only if it lasts `min_speech_s`. The stream is flushed at the end
//! (the final partial frame is zero-padded), so speech running to the last sample is closed.
//! On two-channel calls [`detect_call`] first removes each channel's crosstalk ([`bleed`]).

pub mod bleed;
pub mod music;

use serde::{Deserialize, Serialize};

use crate::record::SpeechInterval;

/// earshot's frame: 256 samples at 16 kHz.
pub const FRAME_SAMPLES: usize = 256;
pub const FRAME_S: f64 = FRAME_SAMPLES as f64 / 16_000.0;

/// `[vad]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadSettings {
    /// Frame score (0-1) at or above which a frame is speech. Default 0.5.
    pub threshold: f32,
    /// Pauses shorter than this (seconds) do not end a speech interval. Default 0.3.
    pub hangover_s: f64,
    /// Speech runs shorter than this (seconds) are dropped as clicks. Default 0.12.
    pub min_speech_s: f64,
    /// Two-channel calls: speech on one channel that is a copy of simultaneous speech on the
    /// other (correlated) and at least this many dB quieter is the other party's crosstalk.
    /// Default 10.
    pub bleed_margin_db: f32,
}

impl Default for VadSettings {
    fn default() -> Self {
        VadSettings { threshold: 0.5, hangover_s: 0.3, min_speech_s: 0.12, bleed_margin_db: 10.0 }
    }
}

/// Score every 16 ms frame of a 16 kHz channel.
pub fn frame_scores(samples_16k: &[f32]) -> Vec<f32> {
    let mut detector = earshot::Detector::default();
    let mut frame = [0.0f32; FRAME_SAMPLES];
    samples_16k
        .chunks(FRAME_SAMPLES)
        .map(|chunk| {
            frame[..chunk.len()].copy_from_slice(chunk);
            frame[chunk.len()..].fill(0.0);
            detector.predict_f32(&frame)
        })
        .collect()
}

/// Turn per-frame scores into speech intervals (seconds), with hangover and a minimum length.
pub fn intervals_from_scores(scores: &[f32], frame_s: f64, settings: &VadSettings) -> Vec<SpeechInterval> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let hangover_frames = (settings.hangover_s / frame_s).round() as usize;
    let mut current: Option<(usize, usize)> = None;
    for (i, &score) in scores.iter().enumerate() {
        if score >= settings.threshold {
            current = Some(match current {
                Some((start, last)) if i - last <= hangover_frames + 1 => (start, i),
                Some(run) => {
                    runs.push(run);
                    (i, i)
                }
                None => (i, i),
            });
        }
    }
    runs.extend(current);
    runs.into_iter()
        .map(|(start, last)| SpeechInterval { start_s: start as f64 * frame_s, end_s: (last + 1) as f64 * frame_s })
        .filter(|iv| iv.duration_s() >= settings.min_speech_s)
        .collect()
}

fn finish(scores: &[f32], length_samples: usize, settings: &VadSettings) -> Vec<SpeechInterval> {
    let length_s = length_samples as f64 / 16_000.0;
    let mut intervals = intervals_from_scores(scores, FRAME_S, settings);
    for iv in &mut intervals {
        iv.end_s = iv.end_s.min(length_s);
    }
    intervals
}

/// Speech intervals of one 16 kHz channel, clipped to its length.
pub fn detect(samples_16k: &[f32], settings: &VadSettings) -> Vec<SpeechInterval> {
    finish(&frame_scores(samples_16k), samples_16k.len(), settings)
}

/// Speech intervals of every channel of a call; with two channels, crosstalk is removed.
pub fn detect_call(channels_16k: &[&[f32]], settings: &VadSettings) -> Vec<Vec<SpeechInterval>> {
    let mut scores: Vec<Vec<f32>> = channels_16k.iter().map(|c| frame_scores(c)).collect();
    if let [a, b] = channels_16k {
        let [sa, sb] = scores.as_mut_slice() else { unreachable!("two channels") };
        bleed::suppress([sa, sb], [a, b], FRAME_SAMPLES, settings.threshold, settings.bleed_margin_db);
    }
    scores.iter().zip(channels_16k).map(|(s, c)| finish(s, c.len(), settings)).collect()
}

/// Total seconds covered by intervals that overlap `[start_s, end_s)`.
pub fn speech_within(intervals: &[SpeechInterval], start_s: f64, end_s: f64) -> f64 {
    intervals.iter().map(|iv| (iv.end_s.min(end_s) - iv.start_s.max(start_s)).max(0.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> VadSettings {
        VadSettings { threshold: 0.5, hangover_s: 0.1, min_speech_s: 0.05, ..VadSettings::default() }
    }

    #[test]
    fn short_pauses_are_bridged_and_long_ones_split() {
        // frames of 10 ms: speech 0-10, pause of 5 frames (bridged), speech 15-20, pause 30, speech 50-60
        let mut scores = vec![0.0f32; 70];
        for i in (0..10).chain(15..20).chain(50..60) {
            scores[i] = 0.9;
        }
        let ivs = intervals_from_scores(&scores, 0.01, &settings());
        assert_eq!(ivs.len(), 2);
        assert!((ivs[0].start_s - 0.0).abs() < 1e-9 && (ivs[0].end_s - 0.20).abs() < 1e-9);
        assert!((ivs[1].start_s - 0.50).abs() < 1e-9 && (ivs[1].end_s - 0.60).abs() < 1e-9);
    }

    #[test]
    fn clicks_are_dropped_and_speech_at_the_end_is_flushed() {
        let mut scores = vec![0.0f32; 40];
        scores[3] = 0.99; // 10 ms click
        for s in &mut scores[30..] {
            *s = 0.8;
        }
        let ivs = intervals_from_scores(&scores, 0.01, &settings());
        assert_eq!(ivs, vec![SpeechInterval { start_s: 0.30, end_s: 0.40 }]);
    }

    #[test]
    fn silence_and_a_pure_tone_are_not_speech() {
        assert!(detect(&vec![0.0; 16_000 * 3], &VadSettings::default()).is_empty());
        let tone: Vec<f32> = (0..16_000 * 3).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect();
        let covered: f64 = detect(&tone, &VadSettings::default()).iter().map(|iv| iv.duration_s()).sum();
        assert!(covered < 0.5, "tone scored as {covered} s of speech");
    }

    #[test]
    fn speech_within_sums_overlaps() {
        let ivs = [SpeechInterval { start_s: 1.0, end_s: 2.0 }, SpeechInterval { start_s: 3.0, end_s: 5.0 }];
        assert!((speech_within(&ivs, 1.5, 4.0) - 1.5).abs() < 1e-9);
    }
}
