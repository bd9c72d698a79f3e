//! Muted copies of recordings: WAV bytes + time ranges -> the same bytes with every sample of
//! every channel in those ranges set to silence in the file's own encoding (PCM, float,
//! G.711), so reviewers can listen to a call without hearing the card number in it.

use crate::audio::decode::{sample_layout, DecodeError};

/// The time ranges to mute for redactions at `spans` (start_s, end_s), each widened by
/// `pad_s` on both sides.
pub fn ranges(spans: impl IntoIterator<Item = (f64, f64)>, pad_s: f64) -> Vec<(f64, f64)> {
    spans.into_iter().map(|(start, end)| ((start - pad_s).max(0.0), end + pad_s)).collect()
}

/// Silence `ranges` (seconds) in a WAV file held in memory. Returns the samples muted per
/// channel.
pub fn mute_wav(bytes: &mut [u8], ranges: &[(f64, f64)]) -> Result<usize, DecodeError> {
    let layout = sample_layout(bytes)?;
    let frame = layout.frame_bytes();
    let frames = layout.data.len() / frame;
    let mut muted = 0;
    for &(start_s, end_s) in ranges {
        let to_frame = |s: f64| ((s * layout.sample_rate_hz as f64).round().max(0.0) as usize).min(frames);
        let (first, last) = (to_frame(start_s), to_frame(end_s));
        if last <= first {
            continue;
        }
        let region = &mut bytes[layout.data.start + first * frame..layout.data.start + last * frame];
        for sample in region.chunks_exact_mut(layout.sample_bytes) {
            sample.copy_from_slice(&layout.silence);
        }
        muted += last - first;
    }
    Ok(muted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::decode::{decode_wav, tests::g711_wav, tests::pcm_wav};

    fn tone(n: usize) -> Vec<Vec<f32>> {
        (0..n).map(|i| vec![(i as f32 * 0.3).sin() * 0.5, (i as f32 * 0.2).cos() * 0.5]).collect()
    }

    #[test]
    fn every_encoding_is_silent_in_the_ranges_and_untouched_elsewhere() {
        let rate = 8000;
        let mut files = vec![
            pcm_wav(rate, 2, 8, false, &tone(16000)),
            pcm_wav(rate, 2, 16, false, &tone(16000)),
            pcm_wav(rate, 2, 24, false, &tone(16000)),
            pcm_wav(rate, 2, 32, true, &tone(16000)),
        ];
        let samples: Vec<i16> = (0..16000).map(|i| ((i as f32 * 0.3).sin() * 10000.0) as i16).collect();
        files.push(g711_wav(rate, true, &samples));
        files.push(g711_wav(rate, false, &samples));
        for original in files {
            let mut bytes = original.clone();
            mute_wav(&mut bytes, &[(0.5, 1.0)]).unwrap();
            let (before, after) = (decode_wav(&original, 10.0).unwrap(), decode_wav(&bytes, 10.0).unwrap());
            for (a, b) in before.channels.iter().zip(&after.channels) {
                let energy = |s: &[f32]| s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32;
                assert!(energy(&b[4000..8000]) < 1e-6, "{}: muted range has energy", after.codec);
                assert!(energy(&a[4000..8000]) > 1e-2);
                assert_eq!(a[..4000], b[..4000], "{}", after.codec);
                assert_eq!(a[8000..], b[8000..], "{}", after.codec);
            }
            assert_eq!(bytes.len(), original.len());
        }
    }

    #[test]
    fn ranges_past_the_end_are_clipped() {
        let mut bytes = pcm_wav(8000, 1, 16, false, &vec![vec![0.5]; 800]);
        assert_eq!(mute_wav(&mut bytes, &[(0.05, 99.0), (5.0, 6.0)]).unwrap(), 400);
    }
}
