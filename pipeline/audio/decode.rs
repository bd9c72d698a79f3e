//! WAV decoding: file bytes -> [`DecodedAudio`] (per-channel f32 in [-1, 1], original rate).
//!
//! PCM integer (8/16/24/32-bit) and 32-bit float go through hound; G.711 mu-law (format tag 7)
//! and A-law (tag 6), which hound does not read, through a small RIFF walk and
//! [`super::g711`]. Headers are checked against sane limits before any large allocation.

use std::io::Cursor;

use crate::record::DecodedAudio;

use super::g711;

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

pub const MIN_RATE_HZ: u32 = 8_000;
pub const MAX_RATE_HZ: u32 = 192_000;

/// Why a file could not be decoded. All are per-call: the batch goes on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not a WAV file ({0})")]
    NotWav(String),
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    #[error("truncated or corrupt WAV: {0}")]
    Corrupt(String),
    #[error("no audio samples")]
    NoSamples,
    #[error("recording is {seconds:.0} s long, over the {limit_s:.0} s limit (decode.max_duration_s)")]
    TooLong { seconds: f64, limit_s: f64 },
    #[error("sample {index} of channel {channel} is {value}, not a finite number: the float data is corrupt")]
    NonFinite { channel: usize, index: usize, value: f32 },
}

/// The `fmt ` fields we need, read without trusting the rest of the header.
#[derive(Debug, Clone, Copy)]
struct Format {
    tag: u16,
    channels: u16,
    sample_rate: u32,
    bits: u16,
}

/// The `data` size a writer leaves when it cannot seek back to fill it in (streaming
/// recorders, pipes): the data runs to the end of the file.
const SIZE_UNKNOWN: usize = u32::MAX as usize;

/// What the RIFF walk found.
struct Chunks<'a> {
    format: Format,
    /// The `fmt ` chunk, header included.
    fmt_chunk: &'a [u8],
    /// The `data` chunk's body, clipped to what the file holds.
    data: &'a [u8],
    /// The `data` chunk declares more bytes than the file holds.
    clipped: bool,
    /// The file is exactly `fmt ` then `data` with true sizes: what hound reads as it is.
    plain: bool,
}

/// Walk RIFF chunks to `fmt ` and `data`. A `data` chunk of unknown size ([`SIZE_UNKNOWN`])
/// runs to the end of the file; odd-sized chunks are followed by their pad byte.
fn riff_chunks(bytes: &[u8]) -> Result<Chunks<'_>, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(DecodeError::NotWav("no RIFF/WAVE header".into()));
    }
    let mut pos = 12;
    let mut found: Option<(Format, &[u8])> = None;
    let mut chunks_seen = 0;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body_start = pos + 8;
        let body_end = if id == b"data" && len == SIZE_UNKNOWN { bytes.len() } else { body_start.saturating_add(len) };
        chunks_seen += 1;
        if id == b"fmt " {
            let body = bytes.get(body_start..body_end.min(bytes.len())).unwrap_or_default();
            if body.len() < 16 {
                return Err(DecodeError::Corrupt("fmt chunk shorter than 16 bytes".into()));
            }
            let u16_at = |o: usize| u16::from_le_bytes(body[o..o + 2].try_into().unwrap());
            let mut tag = u16_at(0);
            if tag == FORMAT_EXTENSIBLE && body.len() >= 26 {
                // The sub-format GUID starts with the real format tag.
                tag = u16_at(24);
            }
            let format = Format {
                tag,
                channels: u16_at(2),
                sample_rate: u32::from_le_bytes(body[4..8].try_into().unwrap()),
                bits: u16_at(14),
            };
            found = Some((format, &bytes[pos..body_start + body.len()]));
        } else if id == b"data" {
            let (format, fmt_chunk) =
                found.ok_or_else(|| DecodeError::Corrupt("data chunk before fmt chunk".into()))?;
            let clipped = body_end > bytes.len();
            let data = &bytes[body_start..body_end.min(bytes.len())];
            let riff_size = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
            let plain = chunks_seen == 2 && len == data.len() && fmt_chunk.len() % 2 == 0 && riff_size == body_end - 8;
            return Ok(Chunks { format, fmt_chunk, data, clipped, plain });
        }
        pos = body_end.saturating_add(len % 2);
    }
    Err(DecodeError::Corrupt(if found.is_some() { "no data chunk".into() } else { "no fmt chunk".into() }))
}

/// RIFF + `fmt ` + `data` with true sizes: the file as hound expects it, whatever other
/// chunks, pad bytes or unknown sizes the original had.
fn plain_wav(fmt_chunk: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + fmt_chunk.len() + 8 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + fmt_chunk.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(fmt_chunk);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn check_format(f: &Format) -> Result<(), DecodeError> {
    let bits_ok = match f.tag {
        FORMAT_PCM => matches!(f.bits, 8 | 16 | 24 | 32),
        FORMAT_FLOAT => f.bits == 32,
        FORMAT_MULAW | FORMAT_ALAW => f.bits == 8,
        _ => true,
    };
    if f.bits == 0 {
        return Err(DecodeError::Corrupt("0 bits per sample".into()));
    }
    if !bits_ok {
        return Err(DecodeError::Unsupported(format!("{} bits per sample in format tag {}", f.bits, f.tag)));
    }
    if f.channels == 0 || f.channels > 2 {
        return Err(DecodeError::Unsupported(format!(
            "{} channels (callqa reads mono or two-channel agent/customer recordings)",
            f.channels
        )));
    }
    if !(MIN_RATE_HZ..=MAX_RATE_HZ).contains(&f.sample_rate) {
        return Err(DecodeError::Unsupported(format!(
            "sample rate {} Hz (supported: {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)",
            f.sample_rate
        )));
    }
    Ok(())
}

/// The chunks of a file callqa can read: a format it supports and a whole `data` chunk.
fn accepted_chunks(bytes: &[u8]) -> Result<Chunks<'_>, DecodeError> {
    let chunks = riff_chunks(bytes)?;
    let format = &chunks.format;
    check_format(format)?;
    if !matches!(format.tag, FORMAT_PCM | FORMAT_FLOAT | FORMAT_MULAW | FORMAT_ALAW) {
        return Err(DecodeError::Unsupported(format!(
            "WAV format tag {} (supported: PCM, IEEE float, G.711 mu-law/A-law)",
            format.tag
        )));
    }
    if chunks.clipped {
        return Err(DecodeError::Corrupt(format!(
            "data chunk declares more bytes than the file holds ({} present)",
            chunks.data.len()
        )));
    }
    Ok(chunks)
}

/// Where a WAV file's samples are and how they are stored: enough to edit them in place
/// (muting a stretch keeps every other byte of the recording as it was).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleLayout {
    /// Byte range of the `data` chunk's whole frames.
    pub data: std::ops::Range<usize>,
    pub sample_rate_hz: u32,
    pub channels: usize,
    /// Bytes of one sample of one channel.
    pub sample_bytes: usize,
    /// The byte pattern of one silent sample in this encoding.
    pub silence: Vec<u8>,
}

impl SampleLayout {
    pub fn frame_bytes(&self) -> usize {
        self.sample_bytes * self.channels
    }
}

/// The layout of a file [`decode_wav`] accepts (same checks, no decoding).
pub fn sample_layout(bytes: &[u8]) -> Result<SampleLayout, DecodeError> {
    let Chunks { format, data, .. } = accepted_chunks(bytes)?;
    let sample_bytes = (format.bits as usize).div_ceil(8);
    // check_format has held the bits to what each tag allows.
    let silence = match (format.tag, format.bits) {
        (FORMAT_MULAW, _) => vec![0xFF],
        (FORMAT_ALAW, _) => vec![0xD5],
        (FORMAT_PCM, 8) => vec![0x80],
        _ => vec![0; sample_bytes],
    };
    let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
    let frame = sample_bytes * format.channels as usize;
    let whole = data.len() / frame * frame;
    Ok(SampleLayout {
        data: start..start + whole,
        sample_rate_hz: format.sample_rate,
        channels: format.channels as usize,
        sample_bytes,
        silence,
    })
}

/// Decode a whole WAV file held in memory.
pub fn decode_wav(bytes: &[u8], max_duration_s: f64) -> Result<DecodedAudio, DecodeError> {
    let Chunks { format, fmt_chunk, data, plain, .. } = accepted_chunks(bytes)?;
    let channel_count = format.channels as usize;
    let bytes_per_frame = (format.bits as usize).div_ceil(8) * channel_count;
    let frames = data.len() / bytes_per_frame;
    let seconds = frames as f64 / format.sample_rate as f64;
    if seconds > max_duration_s {
        return Err(DecodeError::TooLong { seconds, limit_s: max_duration_s });
    }
    if frames == 0 {
        return Err(DecodeError::NoSamples);
    }
    // Samples go straight into their channel: no interleaved copy of a long recording.
    let mut channels = vec![Vec::with_capacity(frames); channel_count];
    let codec = match format.tag {
        FORMAT_MULAW | FORMAT_ALAW => {
            let expand = if format.tag == FORMAT_MULAW { g711::mulaw_to_linear } else { g711::alaw_to_linear };
            for (i, &b) in data[..frames * channel_count].iter().enumerate() {
                channels[i % channel_count].push(expand(b) as f32 / 32768.0);
            }
            if format.tag == FORMAT_MULAW {
                "mulaw"
            } else {
                "alaw"
            }
        }
        _ if data.len() as u64 >= SIZE_UNKNOWN as u64 - 64 => {
            return Err(DecodeError::Unsupported("a data chunk over 4 GiB (RF64 is not supported)".into()))
        }
        _ if plain => decode_pcm(bytes, &mut channels)?,
        _ => decode_pcm(&plain_wav(fmt_chunk, data), &mut channels)?,
    };
    if codec == "pcm_f32" {
        clean_float(&mut channels)?;
    }
    // hound reads whole frames only; keep the channels the same length.
    let shortest = channels.iter().map(Vec::len).min().unwrap_or(0);
    channels.iter_mut().for_each(|c| c.truncate(shortest));
    Ok(DecodedAudio { sample_rate_hz: format.sample_rate, channels, codec })
}

/// Float WAVs may hold anything: NaN or infinity is corruption and fails the call (it would
/// reach whisper.cpp and crash it); finite samples beyond full scale are clipped to [-1, 1],
/// as any player would, so the resampler and the speech detector see sane levels.
fn clean_float(channels: &mut [Vec<f32>]) -> Result<(), DecodeError> {
    for (channel, samples) in channels.iter_mut().enumerate() {
        if let Some(index) = samples.iter().position(|s| !s.is_finite()) {
            return Err(DecodeError::NonFinite { channel, index, value: samples[index] });
        }
        for s in samples.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
    }
    Ok(())
}

fn decode_pcm(bytes: &[u8], channels: &mut [Vec<f32>]) -> Result<&'static str, DecodeError> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| match e {
        hound::Error::Unsupported => DecodeError::Unsupported("this PCM layout is not supported by hound".into()),
        other => DecodeError::Corrupt(other.to_string()),
    })?;
    let spec = reader.spec();
    let corrupt = |e: hound::Error| DecodeError::Corrupt(e.to_string());
    let count = channels.len();
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for (i, sample) in reader.into_samples::<f32>().enumerate() {
                channels[i % count].push(sample.map_err(corrupt)?);
            }
            Ok("pcm_f32")
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            for (i, sample) in reader.into_samples::<i32>().enumerate() {
                channels[i % count].push(sample.map_err(corrupt)? as f32 * scale);
            }
            Ok(match bits {
                8 => "pcm_u8",
                16 => "pcm_s16",
                24 => "pcm_s24",
                _ => "pcm_s32",
            })
        }
        (format, bits) => Err(DecodeError::Unsupported(format!("{format:?} PCM with {bits} bits per sample"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a WAV in memory with hound.
    pub fn pcm_wav(rate: u32, channels: u16, bits: u16, float: bool, frames: &[Vec<f32>]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
        };
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for frame in frames {
            for &s in frame {
                if float {
                    w.write_sample(s).unwrap();
                } else {
                    let max = ((1i64 << (bits - 1)) - 1) as f32;
                    w.write_sample((s * max).round() as i32).unwrap();
                }
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    /// A G.711 WAV (hound cannot write it).
    pub fn g711_wav(rate: u32, mulaw: bool, samples: &[i16]) -> Vec<u8> {
        let channel: Vec<f32> = samples.iter().map(|&s| s as f32 / 32767.0).collect();
        let codec = if mulaw { crate::assemble::Codec::Mulaw } else { crate::assemble::Codec::Alaw };
        crate::assemble::encode_wav(&[channel], rate, codec)
    }

    fn ramp(n: usize) -> Vec<Vec<f32>> {
        (0..n).map(|i| vec![(i as f32 / n as f32) - 0.5, 0.25]).collect()
    }

    #[test]
    fn every_pcm_layout_decodes_to_the_same_values() {
        for (bits, float, tolerance) in
            [(8, false, 1.0 / 64.0), (16, false, 1e-4), (24, false, 1e-6), (32, false, 1e-6), (32, true, 0.0)]
        {
            let bytes = pcm_wav(8000, 2, bits, float, &ramp(100));
            let audio = decode_wav(&bytes, 3600.0).unwrap();
            assert_eq!(audio.channels.len(), 2);
            assert_eq!(audio.channels[0].len(), 100);
            for (i, &s) in audio.channels[0].iter().enumerate() {
                let want = (i as f32 / 100.0) - 0.5;
                assert!((s - want).abs() <= tolerance, "{bits}-bit float={float}: {s} vs {want}");
            }
            assert!((audio.channels[1][7] - 0.25).abs() <= tolerance);
        }
    }

    #[test]
    fn g711_both_laws_decode() {
        let samples: Vec<i16> = (0..160).map(|i| ((i as f32 * 0.3).sin() * 10000.0) as i16).collect();
        for mulaw in [true, false] {
            let audio = decode_wav(&g711_wav(8000, mulaw, &samples), 3600.0).unwrap();
            assert_eq!(audio.codec, if mulaw { "mulaw" } else { "alaw" });
            for (got, &want) in audio.channels[0].iter().zip(&samples) {
                assert!((got * 32768.0 - want as f32).abs() < 700.0);
            }
        }
    }

    #[test]
    fn bad_inputs_have_specific_errors() {
        assert!(matches!(decode_wav(&[], 10.0), Err(DecodeError::Empty)));
        assert!(matches!(decode_wav(b"ID3\x03 mp3 bytes", 10.0), Err(DecodeError::NotWav(_))));
        let good = pcm_wav(16000, 1, 16, false, &vec![vec![0.1]; 1000]);
        assert!(matches!(decode_wav(&good[..good.len() / 2], 10.0), Err(DecodeError::Corrupt(_))));
        assert!(matches!(decode_wav(&good[..30], 10.0), Err(DecodeError::Corrupt(_))));
        let mut absurd_rate = good.clone();
        absurd_rate[24..28].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(matches!(decode_wav(&absurd_rate, 10.0), Err(DecodeError::Unsupported(_))));
        let mut many_channels = good.clone();
        many_channels[22..24].copy_from_slice(&6u16.to_le_bytes());
        assert!(matches!(decode_wav(&many_channels, 10.0), Err(DecodeError::Unsupported(_))));
        let mut mp3_in_wav = good.clone();
        mp3_in_wav[20..22].copy_from_slice(&85u16.to_le_bytes());
        assert!(matches!(decode_wav(&mp3_in_wav, 10.0), Err(DecodeError::Unsupported(_))));
        assert!(matches!(decode_wav(&good, 0.01), Err(DecodeError::TooLong { .. })));
        let header_only = pcm_wav(16000, 1, 16, false, &[]);
        assert!(matches!(decode_wav(&header_only, 10.0), Err(DecodeError::NoSamples)));
    }

    #[test]
    fn non_finite_float_samples_fail_and_huge_ones_are_clipped() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut frames = vec![vec![0.1, 0.2]; 50];
            frames[7][1] = bad;
            let err = decode_wav(&pcm_wav(8000, 2, 32, true, &frames), 10.0).unwrap_err();
            assert!(matches!(err, DecodeError::NonFinite { channel: 1, index: 7, .. }), "{err:?}");
            assert!(err.to_string().contains("sample 7 of channel 1"), "{err}");
        }
        let frames: Vec<Vec<f32>> = (0..800).map(|i| vec![if i % 2 == 0 { 1e30 } else { -3.0 }]).collect();
        let audio = decode_wav(&pcm_wav(8000, 1, 32, true, &frames), 10.0).unwrap();
        assert!(audio.channels[0].iter().all(|s| s.abs() <= 1.0));
        // And the resampler takes what decode hands it.
        let resampled = crate::audio::resample::to_16k(&audio.channels, 8000).unwrap();
        assert!(resampled[0].iter().all(|s| s.is_finite()));
    }
}
