//! Loudness: a speaker channel (16 kHz samples) and its speech intervals -> EBU R128
//! integrated loudness (LUFS), loudness range (LU) and `raised_voice` events.
//!
//! Measured with the `ebur128` crate (ITU-R BS.1770 K-weighting and gating). A raised voice is
//! relative to the speaker's own level in the call: short-term loudness (3 s windows, every
//! 0.1 s) that stays `raised_db` above the median short-term loudness of that speaker's speech
//! for at least `raised_min_s`. Absolute levels depend on the phone line and the recorder, so
//! only a speaker's change against themselves means anything. Needs no transcript.

use ebur128::{EbuR128, Mode};
use serde::{Deserialize, Serialize};

use crate::record::{Event, EventKind, Speaker, SpeechInterval};

/// `[loudness]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoudnessSettings {
    /// Short-term loudness this many dB above the speaker's median is a raised voice.
    /// Default 6.
    pub raised_db: f64,
    /// ... when it lasts at least this long (seconds). Default 2.
    pub raised_min_s: f64,
}

impl Default for LoudnessSettings {
    fn default() -> Self {
        LoudnessSettings { raised_db: 6.0, raised_min_s: 2.0 }
    }
}

/// One channel's loudness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelLoudness {
    /// Gated integrated loudness (LUFS); `None` for a silent channel.
    pub integrated_lufs: Option<f64>,
    /// Loudness range (LU); `None` when too short to measure.
    pub range_lu: Option<f64>,
}

const RATE_HZ: u32 = 16_000;
const HOP_S: f64 = 0.1;
const SHORT_TERM_S: f64 = 3.0;
const HOPS_PER_SHORT_TERM: usize = 30;

/// Short-term loudness every 0.1 s, as (window centre in seconds, LUFS), and the channel's
/// integrated loudness and range.
fn measure(samples: &[f32]) -> (Vec<(f64, f64)>, ChannelLoudness) {
    let Ok(mut meter) = EbuR128::new(1, RATE_HZ, Mode::I | Mode::LRA | Mode::S) else {
        return (Vec::new(), ChannelLoudness::default());
    };
    let hop = (HOP_S * RATE_HZ as f64) as usize;
    let mut series = Vec::with_capacity(samples.len() / hop + 1);
    // Short-term loudness is the mean K-weighted energy of the last 30 hops. ebur128's
    // `loudness_shortterm` sums all 3 s of samples again at every hop (30 times the audio,
    // a sum whose additions depend on each other); summing each hop once and averaging the
    // last 30 is the same quantity up to float rounding.
    let mut hop_energies = std::collections::VecDeque::with_capacity(HOPS_PER_SHORT_TERM);
    for (i, chunk) in samples.chunks(hop).enumerate() {
        if meter.add_frames_f32(chunk).is_err() {
            break;
        }
        let short_term = if chunk.len() == hop {
            if hop_energies.len() == HOPS_PER_SHORT_TERM {
                hop_energies.pop_front();
            }
            hop_energies.push_back(meter.loudness_window((HOP_S * 1000.0) as u32).map_or(0.0, loudness_to_energy));
            (hop_energies.len() == HOPS_PER_SHORT_TERM)
                .then(|| energy_to_loudness(hop_energies.iter().sum::<f64>() / HOPS_PER_SHORT_TERM as f64))
        } else {
            // The channel's last hop, cut short: ebur128's own measure of the 3 s ending there.
            meter.loudness_shortterm().ok()
        };
        let end_s = ((i * hop) + chunk.len()) as f64 / RATE_HZ as f64;
        if let Some(lufs) = short_term.filter(|_| end_s >= SHORT_TERM_S) {
            series.push((end_s - SHORT_TERM_S / 2.0, lufs));
        }
    }
    let finite = |v: Result<f64, ebur128::Error>| v.ok().filter(|v| v.is_finite());
    let loudness =
        ChannelLoudness { integrated_lufs: finite(meter.loudness_global()), range_lu: finite(meter.loudness_range()) };
    (series, loudness)
}

/// BS.1770 loudness of a mean square (one channel, weight 1), as ebur128 computes it.
fn energy_to_loudness(energy: f64) -> f64 {
    if energy <= 0.0 {
        return f64::NEG_INFINITY;
    }
    10.0 * energy.log10() - 0.691
}

fn loudness_to_energy(lufs: f64) -> f64 {
    10f64.powf((lufs + 0.691) / 10.0)
}

/// The loudness of one channel and its raised-voice events.
pub fn analyse(
    samples: &[f32],
    speaker: Speaker,
    speech: &[SpeechInterval],
    settings: &LoudnessSettings,
) -> (ChannelLoudness, Vec<Event>) {
    let (series, loudness) = measure(samples);
    let in_speech = |t: f64| speech.iter().any(|s| s.start_s <= t && t <= s.end_s);
    let speaking: Vec<(f64, f64)> = series.into_iter().filter(|&(t, v)| v.is_finite() && in_speech(t)).collect();
    (loudness, raised(&speaking, speaker, settings))
}

/// Stretches of `speaking` (time, LUFS) at least `raised_db` over their median.
fn raised(speaking: &[(f64, f64)], speaker: Speaker, settings: &LoudnessSettings) -> Vec<Event> {
    let mut levels: Vec<f64> = speaking.iter().map(|&(_, v)| v).collect();
    if levels.is_empty() {
        return Vec::new();
    }
    levels.sort_by(f64::total_cmp);
    let median = levels[levels.len() / 2];
    let mut events = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut close = |run: &mut Vec<(f64, f64)>| {
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            // Consecutive hops cover HOP_S each.
            if last.0 - first.0 + HOP_S >= settings.raised_min_s {
                let peak = run.iter().map(|&(_, v)| v).fold(f64::MIN, f64::max);
                events.push(Event::metric(
                    EventKind::RaisedVoice,
                    Some(speaker),
                    first.0,
                    last.0 + HOP_S,
                    format!(
                        "{speaker} {:.0} dB above their usual level for {:.1} s (peak {peak:.1} LUFS short-term, usual {median:.1})",
                        peak - median,
                        last.0 - first.0 + HOP_S
                    ),
                ));
            }
        }
        run.clear();
    };
    for &(t, v) in speaking {
        let continues = run.last().is_some_and(|&(prev, _)| t - prev <= HOP_S * 1.5);
        if v >= median + settings.raised_db && (run.is_empty() || continues) {
            run.push((t, v));
        } else {
            close(&mut run);
            if v >= median + settings.raised_db {
                run.push((t, v));
            }
        }
    }
    close(&mut run);
    events
}

/// Integrated loudness of a whole clip (LUFS), for tests and tools that level clips.
pub fn integrated_lufs(samples: &[f32]) -> Option<f64> {
    measure(samples).1.integrated_lufs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 300 Hz tone at `db` dBFS for `seconds`.
    fn tone(db: f64, seconds: f64) -> Vec<f32> {
        let amplitude = 10f64.powf(db / 20.0);
        (0..(seconds * RATE_HZ as f64) as usize)
            .map(|i| (amplitude * (2.0 * std::f64::consts::PI * 300.0 * i as f64 / RATE_HZ as f64).sin()) as f32)
            .collect()
    }

    #[test]
    fn a_stretch_ten_db_louder_is_one_raised_voice_event_where_it_is() {
        let mut samples = tone(-30.0, 20.0);
        samples.extend(tone(-20.0, 6.0));
        samples.extend(tone(-30.0, 20.0));
        let speech = [SpeechInterval { start_s: 0.0, end_s: 46.0 }];
        let (loudness, events) = analyse(&samples, Speaker::Agent, &speech, &LoudnessSettings::default());
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!((e.kind, e.speaker), (EventKind::RaisedVoice, Some(Speaker::Agent)));
        // The 3 s window smooths the edges by up to 1.5 s.
        assert!(e.start_s > 18.0 && e.start_s < 21.5 && e.end_s > 24.5 && e.end_s < 28.0, "{e:?}");
        let lufs = loudness.integrated_lufs.unwrap();
        assert!(lufs > -32.0 && lufs < -24.0, "{lufs}");
        assert!(loudness.range_lu.unwrap() > 5.0);
    }

    #[test]
    fn short_term_series_matches_ebur128s_own_short_term_loudness() {
        let mut samples = tone(-30.0, 7.0);
        samples.extend(vec![0.0; 16_000 * 4]);
        samples.extend(tone(-18.0, 5.55));
        let (series, _) = measure(&samples);
        let mut meter = EbuR128::new(1, RATE_HZ, Mode::S).unwrap();
        let expected: Vec<(f64, f64)> = samples
            .chunks(1600)
            .scan(0, |end, chunk| {
                meter.add_frames_f32(chunk).unwrap();
                *end += chunk.len();
                Some((*end as f64 / 16_000.0, meter.loudness_shortterm().unwrap()))
            })
            .filter(|&(end_s, _)| end_s >= SHORT_TERM_S)
            .map(|(end_s, lufs)| (end_s - SHORT_TERM_S / 2.0, lufs))
            .collect();
        assert_eq!(series.len(), expected.len());
        assert_eq!(series.len(), 137, "every 0.1 s from 3 s, and the cut-short last hop");
        for (&(t, lufs), &(want_t, want)) in series.iter().zip(&expected) {
            assert_eq!(t, want_t);
            assert!((lufs - want).abs() < 1e-9 || lufs == want, "at {t}: {lufs} vs {want}");
        }
    }

    #[test]
    fn steady_speech_short_bursts_and_silence_raise_nothing() {
        let speech = [SpeechInterval { start_s: 0.0, end_s: 40.0 }];
        let settings = LoudnessSettings::default();
        assert!(analyse(&tone(-25.0, 40.0), Speaker::Customer, &speech, &settings).1.is_empty());
        // A 1 s burst moves the 3 s window by less than the threshold for long enough.
        let mut burst = tone(-30.0, 20.0);
        burst.extend(tone(-22.0, 1.0));
        burst.extend(tone(-30.0, 19.0));
        assert!(analyse(&burst, Speaker::Customer, &speech, &settings).1.is_empty());
        let (silent, events) = analyse(&vec![0.0; 16_000 * 10], Speaker::Agent, &[], &settings);
        assert!(events.is_empty());
        assert_eq!(silent.integrated_lufs, None);
    }
}
