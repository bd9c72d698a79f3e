//! Crosstalk suppression for two-channel recordings.
//!
//! On a two-channel recording each party's voice leaks faintly into the other channel
//! (line echo, headset crosstalk), and a VAD hears that leak as speech. A frame of one channel
//! is bleed, not speech of that speaker, when the other channel is speech at the same moment,
//! this channel is at least `bleed_margin_db` quieter, and this channel is largely a copy of
//! the other (normalised cross-correlation over small lags of at least `MIN_CORRELATION`).
//! The copy test matters: two people really talking at once can differ in level by 15 dB
//! too, but their signals are unrelated.

/// Lags searched for the leak path, in samples at 16 kHz (+-2.5 ms).
const MAX_LAG: usize = 40;
/// Share of a frame explained by the other channel for it to count as a copy.
pub const MIN_CORRELATION: f32 = 0.6;

/// Frame energy in dB (RMS relative to full scale).
pub fn frame_energy_db(samples_16k: &[f32], frame: usize) -> Vec<f32> {
    samples_16k
        .chunks(frame)
        .map(|c| 10.0 * ((c.iter().map(|s| s * s).sum::<f32>() / frame as f32) + 1e-10).log10())
        .collect()
}

/// The largest normalised cross-correlation of frame `f` of `a` with `b` over lags in
/// `-MAX_LAG..=MAX_LAG`.
pub fn correlation_at(a: &[f32], b: &[f32], f: usize, frame: usize) -> f32 {
    let n = a.len().min(b.len());
    let (start, end) = (f * frame, ((f + 1) * frame).min(n));
    if start >= end {
        return 0.0;
    }
    let xa = &a[start..end];
    let energy_a: f32 = xa.iter().map(|s| s * s).sum();
    let mut best = 0.0f32;
    for lag in -(MAX_LAG as isize)..=MAX_LAG as isize {
        let (from, to) = (start as isize + lag, end as isize + lag);
        if from < 0 || to > n as isize {
            continue;
        }
        let xb = &b[from as usize..to as usize];
        let energy_b: f32 = xb.iter().map(|s| s * s).sum();
        let dot: f32 = xa.iter().zip(xb).map(|(x, y)| x * y).sum();
        let denom = (energy_a * energy_b).sqrt();
        if denom > 0.0 {
            best = best.max(dot.abs() / denom);
        }
    }
    best
}

/// Per frame correlation (see [`correlation_at`]).
pub fn frame_correlation(a: &[f32], b: &[f32], frame: usize) -> Vec<f32> {
    (0..a.len().min(b.len()).div_ceil(frame)).map(|f| correlation_at(a, b, f, frame)).collect()
}

/// Zero the VAD scores of frames that are only the other channel's leak.
pub fn suppress(scores: [&mut Vec<f32>; 2], channels: [&[f32]; 2], frame: usize, threshold: f32, margin_db: f32) {
    let [a, b] = scores;
    let energy = [frame_energy_db(channels[0], frame), frame_energy_db(channels[1], frame)];
    let n = a.len().min(b.len()).min(energy[0].len()).min(energy[1].len());
    for i in 0..n {
        let level_gap = (energy[0][i] - energy[1][i]).abs();
        // Correlation is costly: only where both channels claim speech at clearly different levels.
        if a[i] < threshold || b[i] < threshold || level_gap < margin_db {
            continue;
        }
        if correlation_at(channels[0], channels[1], i, frame) < MIN_CORRELATION {
            continue;
        }
        if energy[0][i] < energy[1][i] - margin_db {
            a[i] = 0.0;
        } else if energy[1][i] < energy[0][i] - margin_db {
            b[i] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u32, n: usize, amplitude: f32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                amplitude * ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
            })
            .collect()
    }

    #[test]
    fn a_quiet_copy_is_bleed_but_a_quiet_other_voice_is_not() {
        let voice_b = noise(1, 256 * 4, 0.5);
        let own_a = noise(2, 256 * 4, 0.5 * 0.1); // 20 dB quieter, unrelated: real overlap
                                                  // frames 0-1: a holds only b's leak (-25 dB); frames 2-3: a holds its own quiet voice.
        let a: Vec<f32> = (0..256 * 4).map(|i| if i < 512 { voice_b[i] * 0.056 } else { own_a[i] }).collect();
        let mut sa = vec![0.9; 4];
        let mut sb = vec![0.9; 4];
        suppress([&mut sa, &mut sb], [&a, &voice_b], 256, 0.5, 15.0);
        assert_eq!(sa, vec![0.0, 0.0, 0.9, 0.9]);
        assert_eq!(sb, vec![0.9; 4]);
    }

    #[test]
    fn correlation_finds_a_delayed_copy() {
        let b = noise(3, 2048, 0.5);
        let a: Vec<f32> = (0..2048).map(|i| if i >= 10 { b[i - 10] * 0.1 } else { 0.0 }).collect();
        let c = frame_correlation(&a, &b, 256);
        assert!(c[2..].iter().all(|&v| v > 0.99), "{c:?}");
        let unrelated = frame_correlation(&noise(4, 2048, 0.5), &b, 256);
        assert!(unrelated.iter().all(|&v| v < 0.3), "{unrelated:?}");
    }

    #[test]
    fn energy_is_in_dbfs() {
        let full: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        assert!(frame_energy_db(&full, 256)[0].abs() < 0.01);
        let quiet: Vec<f32> = full.iter().map(|s| s * 0.01).collect();
        assert!((frame_energy_db(&quiet, 256)[0] + 40.0).abs() < 0.01);
    }
}
