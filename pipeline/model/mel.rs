//! The mel filterbank whisper.cpp expects inside a GGML file.
//!
//! In: number of mel bands. Out: `n_mels x 201` f32 weights, identical in construction to
//! `librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm="slaney")`, which is
//! what OpenAI's Whisper ships: Slaney mel scale, 0-8000 Hz, each triangle divided by half
//! its width in Hz.

pub const SAMPLE_RATE: f64 = 16_000.0;
pub const N_FFT: usize = 400;
pub const N_FREQS: usize = N_FFT / 2 + 1;

// Slaney's scale: linear (200/3 Hz per mel) up to 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// Row-major `[n_mels][N_FREQS]` filterbank.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let fmax = SAMPLE_RATE / 2.0;
    let fft_freqs: Vec<f64> = (0..N_FREQS).map(|i| i as f64 * fmax / (N_FREQS - 1) as f64).collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(fmax));
    let mel_points: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut weights = Vec::with_capacity(n_mels * N_FREQS);
    for m in 0..n_mels {
        let (left, centre, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let area_norm = 2.0 / (right - left);
        for &f in &fft_freqs {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            weights.push((lower.min(upper).max(0.0) * area_norm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_is_linear_below_1khz_and_log_above() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
    }

    #[test]
    fn filterbank_matches_whisper_reference_values() {
        let fb = filterbank(80);
        assert_eq!(fb.len(), 80 * N_FREQS);
        // Values of OpenAI's mel_filters.npz (librosa 0.8, float32) at a few positions.
        assert!((fb[1] - 0.024_862_593).abs() < 1e-6, "{}", fb[1]);
        assert!((fb[N_FREQS + 2] - 0.022_871_772).abs() < 1e-6, "{}", fb[N_FREQS + 2]);
        assert_eq!(fb[0], 0.0);
        // Every band has some weight.
        for m in 0..80 {
            let row = &fb[m * N_FREQS..(m + 1) * N_FREQS];
            assert!(row.iter().any(|&w| w > 0.0), "band {m} empty");
        }
    }
}
