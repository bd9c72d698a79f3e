//! Music and tones: one 16 kHz channel -> the intervals where it carries hold music or a tone
//! instead of a voice.
//!
//! A held note or a tone keeps its spectrum for hundreds of milliseconds; speech moves its
//! harmonics and formants within tens. Each 16 ms frame's magnitude spectrum (190-4000 Hz,
//! the telephone band) is compared with the frame 64 ms earlier: a frame is *steady* when it
//! is tonal (peaks, not the flat spectrum of noise: [`TONAL_FLATNESS`]), the two are nearly
//! parallel (cosine above [`STEADY_SIMILARITY`]) and both are within [`ACTIVE_RANGE_DB`] of
//! the channel's loud frames. Runs of at least [`SEED_S`] of steady
//! frames are joined across quiet or unsteady gaps of up to [`JOIN_S`] (hold beeps repeat
//! every few seconds), an edge run only when the stretch to its neighbour is steady enough
//! (so a drawn-out vowel beside the music does not pull speech in); a joined stretch is music
//! or tone when it lasts `min_s` and at least [`STEADY_SHARE`] of its active frames are steady.
//! Its edges then grow to the silence around it ([`QUIET_S`], at most [`EDGE_S`]), over the
//! short notes that were no seeds.
//!
//! Measured on the corpus (README, Holds): speech has 8-30% steady active frames (a sung or
//! drawn-out vowel at most), the synthetic hold music of the tests about 56%, tones and beeps
//! 80-100%.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::record::SpeechInterval;

const WINDOW: usize = 512;
const HOP: usize = 256;
const HOP_S: f64 = HOP as f64 / 16_000.0;
/// FFT bins 6..128 of 512 at 16 kHz: about 190-4000 Hz.
const BINS: std::ops::Range<usize> = 6..128;
/// Frames compared: 4 hops = 64 ms apart.
const LAG: usize = 4;
pub const STEADY_SIMILARITY: f32 = 0.8;
/// Spectral flatness (geometric over arithmetic mean of the power) below which a frame is
/// tonal: tones and notes measure under 0.001, speech 0.01-0.05, steady noise 0.1-0.4.
pub const TONAL_FLATNESS: f32 = 0.02;
pub const ACTIVE_RANGE_DB: f32 = 30.0;
pub const SEED_S: f64 = 0.2;
pub const JOIN_S: f64 = 6.0;
pub const STEADY_SHARE: f64 = 0.4;
/// The silence that bounds music: a stretch grows over active frames until this much quiet ...
pub const QUIET_S: f64 = 0.2;
/// ... or this far.
pub const EDGE_S: f64 = 3.0;

/// Per frame: (active, steady).
fn frame_states(samples: &[f32], fft: &Arc<dyn RealToComplex<f32>>) -> Vec<(bool, bool)> {
    if samples.len() < WINDOW {
        return Vec::new();
    }
    let hann: Vec<f32> =
        (0..WINDOW).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / WINDOW as f32).cos()).collect();
    let (mut input, mut spectrum) = (fft.make_input_vec(), fft.make_output_vec());
    // (level in dB, tonal, magnitudes)
    let mut frames: Vec<(f32, bool, Vec<f32>)> = Vec::with_capacity(samples.len() / HOP);
    for start in (0..=samples.len() - WINDOW).step_by(HOP) {
        for (i, x) in input.iter_mut().enumerate() {
            *x = samples[start + i] * hann[i];
        }
        fft.process(&mut input, &mut spectrum).expect("buffers from the plan");
        let magnitudes: Vec<f32> = spectrum[BINS].iter().map(|c| c.norm()).collect();
        let powers = magnitudes.iter().map(|m| m * m + 1e-12);
        let energy: f32 = powers.clone().sum();
        let geometric = (powers.map(f32::ln).sum::<f32>() / magnitudes.len() as f32).exp();
        let tonal = geometric / (energy / magnitudes.len() as f32) < TONAL_FLATNESS;
        frames.push((10.0 * energy.log10(), tonal, magnitudes));
    }
    let mut levels: Vec<f32> = frames.iter().map(|f| f.0).collect();
    levels.sort_by(f32::total_cmp);
    let loud = levels[(levels.len() * 95 / 100).min(levels.len() - 1)];
    // Below -60 dBFS-ish frame energy nothing is worth classifying, however quiet the call.
    let floor = (loud - ACTIVE_RANGE_DB).max(-35.0);
    let active: Vec<bool> = frames.iter().map(|f| f.0 >= floor).collect();
    (0..frames.len())
        .map(|t| {
            let steady = t >= LAG && active[t] && active[t - LAG] && frames[t].1 && {
                let (a, b) = (&frames[t].2, &frames[t - LAG].2);
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let norms = a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|y| y * y).sum::<f32>().sqrt();
                dot / norms.max(1e-12) > STEADY_SIMILARITY
            };
            (active[t], steady)
        })
        .collect()
}

/// Intervals of music or tone lasting at least `min_s`, in seconds from the channel's start.
pub fn music_intervals(samples_16k: &[f32], min_s: f64) -> Vec<SpeechInterval> {
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
    let states = frame_states(samples_16k, &fft);
    // Steady runs long enough to be a note or a beep: (first frame, end frame).
    let seed_frames = (SEED_S / HOP_S).ceil() as usize;
    let mut seeds: Vec<(usize, usize)> = Vec::new();
    let mut run_start = None;
    for (t, &(_, steady)) in states.iter().chain(std::iter::once(&(false, false))).enumerate() {
        match (steady, run_start) {
            (true, None) => run_start = Some(t),
            (false, Some(start)) => {
                if t - start >= seed_frames {
                    seeds.push((start, t));
                }
                run_start = None;
            }
            _ => {}
        }
    }
    let join_frames = (JOIN_S / HOP_S) as usize;
    let mut stretches: Vec<Vec<(usize, usize)>> = Vec::new();
    for seed in seeds {
        match stretches.last_mut() {
            Some(last) if seed.0 - last.last().expect("never empty").1 <= join_frames => last.push(seed),
            _ => stretches.push(vec![seed]),
        }
    }
    let share = |frames: &[(bool, bool)]| {
        let active = frames.iter().filter(|f| f.0).count();
        frames.iter().filter(|f| f.1).count() as f64 / active.max(1) as f64
    };
    // A drawn-out vowel next to the music would pull the speech around it in: an edge seed
    // counts only if the stretch from it to the next seed is steady enough.
    for seeds in &mut stretches {
        while seeds.len() >= 2 && share(&states[seeds[0].0..seeds[1].0]) < STEADY_SHARE {
            seeds.remove(0);
        }
        while seeds.len() >= 2 && share(&states[seeds[seeds.len() - 2].1..seeds[seeds.len() - 1].1]) < STEADY_SHARE {
            seeds.pop();
        }
    }
    // Notes too short to be seeds lie at the music's edges too: grow each stretch out to the
    // silence around it (at most EDGE_S, so speech running straight on is not swallowed).
    let (quiet, most) = ((QUIET_S / HOP_S).ceil() as usize, (EDGE_S / HOP_S) as usize);
    let grow = |from: usize, forward: bool| -> usize {
        let (mut edge, mut inactive) = (from, 0);
        for step in 1..=most {
            let Some(t) = (if forward { from.checked_add(step) } else { from.checked_sub(step) }) else { break };
            let Some(&(active, _)) = states.get(t) else { break };
            if active {
                (edge, inactive) = (t, 0);
            } else if {
                inactive += 1;
                inactive
            } >= quiet
            {
                break;
            }
        }
        edge
    };
    // A frame's spectrum spans WINDOW samples after its start: the interval ends there.
    let seconds = |frame: usize| frame as f64 * HOP_S;
    stretches
        .iter()
        .map(|s| (s[0].0, s.last().expect("never empty").1))
        .filter(|&(start, end)| seconds(end) - seconds(start) >= min_s && share(&states[start..end]) >= STEADY_SHARE)
        .map(|(start, end)| SpeechInterval {
            start_s: seconds(grow(start, false)),
            end_s: (seconds(grow(end.saturating_sub(1), true)) + WINDOW as f64 / 16_000.0)
                .min(samples_16k.len() as f64 / 16_000.0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f64, hz: f64, on_off: Option<(f64, f64)>) -> Vec<f32> {
        (0..(seconds * 16_000.0) as usize)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let on = on_off.is_none_or(|(on, off)| t % (on + off) < on);
                if on {
                    0.2 * (2.0 * std::f64::consts::PI * hz * t).sin() as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn a_steady_tone_and_hold_beeps_are_found_with_their_times() {
        let mut call = vec![0.0f32; 16_000 * 2];
        call.extend(tone(8.0, 440.0, None));
        call.extend(vec![0.0; 16_000 * 3]);
        let found = music_intervals(&call, 3.0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0].start_s - 2.0).abs() < 0.1 && (found[0].end_s - 10.0).abs() < 0.1, "{found:?}");
        // A 0.3 s beep every 3 s is one stretch, not ten.
        let beeps = tone(30.0, 425.0, Some((0.3, 2.7)));
        let found = music_intervals(&beeps, 3.0);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].start_s < 0.1 && found[0].end_s > 27.0, "{found:?}");
    }

    #[test]
    fn white_noise_silence_and_short_tones_are_not_music() {
        let mut state = 1u32;
        let noise: Vec<f32> = (0..16_000 * 10)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert!(music_intervals(&noise, 3.0).is_empty());
        // Low-passed noise (a fan, a line hum without its tone) keeps its spectrum's shape.
        let mut smooth = 0.0f32;
        let rumble: Vec<f32> = noise
            .iter()
            .map(|x| {
                smooth = 0.95 * smooth + 0.05 * x;
                smooth
            })
            .collect();
        assert!(music_intervals(&rumble, 3.0).is_empty());
        assert!(music_intervals(&vec![0.0; 16_000 * 10], 3.0).is_empty());
        assert!(music_intervals(&tone(2.0, 440.0, None), 3.0).is_empty());
        assert!(music_intervals(&[0.1; 100], 3.0).is_empty());
    }
}
