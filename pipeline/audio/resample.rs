//! Sample-rate conversion: per-channel buffers at any supported rate -> 16 kHz.
//!
//! Uses rubato's synchronous FFT resampler over all channels at once, so channels stay on one
//! clock; the resampler's own delay is trimmed and the output length is exactly
//! `ceil(len * 16000 / rate)`, so a timestamp means the same instant before and after.

use rubato::{FftFixedIn, Resampler};

use super::TARGET_RATE_HZ;

#[derive(Debug, thiserror::Error)]
#[error("resampling failed: {0}")]
pub struct ResampleError(String);

const CHUNK_FRAMES: usize = 1024;

pub fn to_16k(channels: &[Vec<f32>], rate_hz: u32) -> Result<Vec<Vec<f32>>, ResampleError> {
    resample(channels, rate_hz, TARGET_RATE_HZ)
}

pub fn resample(channels: &[Vec<f32>], from_hz: u32, to_hz: u32) -> Result<Vec<Vec<f32>>, ResampleError> {
    if from_hz == to_hz || channels.is_empty() {
        return Ok(channels.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| ResampleError(e.to_string());
    let len = channels[0].len();
    let expected = (len as u64 * to_hz as u64).div_ceil(from_hz as u64) as usize;
    let mut resampler = FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, CHUNK_FRAMES, 2, channels.len())
        .map_err(|e| err(&e))?;
    let delay = resampler.output_delay();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(expected + delay + 2 * CHUNK_FRAMES); channels.len()];
    let append = |out: &mut Vec<Vec<f32>>, chunk: Vec<Vec<f32>>| {
        for (o, c) in out.iter_mut().zip(chunk) {
            o.extend_from_slice(&c);
        }
    };
    let mut pos = 0;
    while pos + resampler.input_frames_next() <= len {
        let need = resampler.input_frames_next();
        let slices: Vec<&[f32]> = channels.iter().map(|c| &c[pos..pos + need]).collect();
        append(&mut out, resampler.process(&slices, None).map_err(|e| err(&e))?);
        pos += need;
    }
    if pos < len {
        let slices: Vec<&[f32]> = channels.iter().map(|c| &c[pos..]).collect();
        append(&mut out, resampler.process_partial(Some(&slices), None).map_err(|e| err(&e))?);
    }
    while out[0].len() < expected + delay {
        append(&mut out, resampler.process_partial::<&[f32]>(None, None).map_err(|e| err(&e))?);
    }
    for channel in &mut out {
        channel.drain(..delay);
        channel.truncate(expected);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn tone(rate: u32, hz: f32, seconds: f32, amplitude: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize).map(|i| amplitude * (TAU * hz * i as f32 / rate as f32).sin()).collect()
    }

    /// Amplitude of the given frequency (single-bin DFT), over the steady middle part.
    fn amplitude_at(samples: &[f32], rate: u32, hz: f32) -> f32 {
        let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &s) in mid.iter().enumerate() {
            let phase = (TAU * hz * i as f32 / rate as f32) as f64;
            re += s as f64 * phase.cos();
            im += s as f64 * phase.sin();
        }
        (2.0 * (re * re + im * im).sqrt() / mid.len() as f64) as f32
    }

    #[test]
    fn a_tone_keeps_amplitude_frequency_and_timing_at_every_rate() {
        for rate in [8_000, 11_025, 22_050, 44_100, 48_000] {
            let input = tone(rate, 1000.0, 1.0, 0.5);
            let out = to_16k(&[input.clone(), input.clone()], rate).unwrap();
            assert_eq!(out[0].len(), (input.len() as u64 * 16_000).div_ceil(rate as u64) as usize, "{rate}");
            let at_1k = amplitude_at(&out[0], 16_000, 1000.0);
            assert!((at_1k - 0.5).abs() < 0.01, "{rate} Hz: amplitude {at_1k}");
            assert!(amplitude_at(&out[0], 16_000, 1300.0) < 0.01, "{rate} Hz: energy leaked off the tone");
            // Delay trimmed: the resampled tone is in phase with an ideal 16 kHz tone. A shift of
            // half an output sample (31 us) would give a mean error of about 0.06 here.
            let ideal = tone(16_000, 1000.0, 1.0, 0.5);
            let err: f32 =
                out[0][4000..12000].iter().zip(&ideal[4000..12000]).map(|(a, b)| (a - b).abs()).sum::<f32>() / 8000.0;
            assert!(err < 0.045, "{rate} Hz: mean error against the ideal tone {err}");
            assert_eq!(out[0], out[1]);
        }
    }

    #[test]
    fn frequencies_above_the_new_nyquist_are_removed() {
        let input = tone(48_000, 12_000.0, 1.0, 0.5);
        let out = to_16k(&[input], 48_000).unwrap();
        let rms = (out[0].iter().map(|s| s * s).sum::<f32>() / out[0].len() as f32).sqrt();
        assert!(rms < 0.01, "aliasing energy {rms}");
    }
}
