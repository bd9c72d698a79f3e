//! Audio: WAV bytes -> per-channel f32 buffers -> 16 kHz speaker channels.
//!
//! [`decode`] reads PCM (8/16/24/32-bit integer, 32-bit float) with hound and G.711 mu-law /
//! A-law itself; [`resample`] brings every channel to 16 kHz with rubato on one clock;
//! [`assign_speakers`] names the channels.

pub mod decode;
pub mod g711;
pub mod resample;

use crate::record::{DecodedAudio, Speaker, SpeakerAudio};

/// Everything Whisper and the speech detector consume runs at this rate.
pub const TARGET_RATE_HZ: u32 = 16_000;

/// Name each 16 kHz channel: mono is `Mixed`; on two channels `agent_channel` is the agent
/// and the other the customer.
pub fn assign_speakers(channels_16k: Vec<Vec<f32>>, agent_channel: usize) -> Vec<SpeakerAudio> {
    if channels_16k.len() == 1 {
        return channels_16k
            .into_iter()
            .map(|samples_16k| SpeakerAudio { speaker: Speaker::Mixed, samples_16k })
            .collect();
    }
    channels_16k
        .into_iter()
        .enumerate()
        .map(|(i, samples_16k)| SpeakerAudio {
            speaker: if i == agent_channel { Speaker::Agent } else { Speaker::Customer },
            samples_16k,
        })
        .collect()
}

/// Decode and resample in one step.
pub fn to_speaker_channels(
    audio: &DecodedAudio,
    agent_channel: usize,
) -> Result<Vec<SpeakerAudio>, resample::ResampleError> {
    let channels = resample::to_16k(&audio.channels, audio.sample_rate_hz)?;
    Ok(assign_speakers(channels, agent_channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speakers_follow_agent_channel() {
        let two = assign_speakers(vec![vec![0.0], vec![1.0]], 1);
        assert_eq!(two[0].speaker, Speaker::Customer);
        assert_eq!(two[1].speaker, Speaker::Agent);
        let mono = assign_speakers(vec![vec![0.0]], 0);
        assert_eq!(mono[0].speaker, Speaker::Mixed);
    }
}
