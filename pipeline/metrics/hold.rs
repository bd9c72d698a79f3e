//! Holds.
//!
//! **Definition.** A hold is a stretch in which the agent has stopped talking to the customer
//! on purpose. It starts when the agent falls silent for at least `hold.min_s` right after
//! saying a hold phrase (`hold.phrases`, e.g. "请稍等", "please hold"; the phrase must end
//! within `hold.phrase_within_s` of the silence), or when music or a tone plays on the agent
//! channel during that silence ([`crate::vad::music`]). It ends when the agent speaks again
//! (or with the call, if the customer was left on hold until it ended). What the customer says
//! meanwhile does not matter.
//!
//! **Why it matters.** The etiquette of the seeds is built around holds ("请稍等" before,
//! "谢谢您的耐心等待" after) and QA standards cap them (e.g. Calabrio: a hold over 2 minutes or
//! more than 3 holds fails the call). A long gap that is not a hold is dead air
//! ([`super::silence`]), which holds are taken out of.
//!
//! **Example.** The agent says "请稍等，我帮您查一下" and is silent from 20.0 s to 52.5 s:
//! one 32.5 s hold. Silent for the same time without the phrase and without music: dead air.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::intervals::{gaps, intersection_total};
use crate::record::SpeechInterval;

/// `[hold]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HoldSettings {
    /// Shortest agent silence (seconds) that can be a hold. Default 10.
    pub min_s: f64,
    /// A hold phrase must end at most this many seconds before the agent falls silent.
    /// Default 10.
    pub phrase_within_s: f64,
    /// Shortest music or tone (seconds) that marks a hold. Default 3.
    pub music_min_s: f64,
    /// Phrases that put the customer on hold, per language (matched like phrase rules, by
    /// sound and with a few errors). Defaults for "zh" and "en" from the seeds' etiquette.
    pub phrases: BTreeMap<String, Vec<String>>,
}

impl Default for HoldSettings {
    fn default() -> Self {
        let list = |phrases: &[&str]| phrases.iter().map(|p| p.to_string()).collect();
        HoldSettings {
            min_s: 10.0,
            phrase_within_s: 10.0,
            music_min_s: 3.0,
            phrases: BTreeMap::from([
                ("zh".to_string(), list(&["请稍等", "请您稍等", "稍等一下", "稍等片刻", "请不要挂机", "我帮您查一下"])),
                (
                    "en".to_string(),
                    list(&["please hold", "one moment please", "bear with me", "hold on", "let me check"]),
                ),
            ]),
        }
    }
}

/// One hold and what started it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub start_s: f64,
    pub end_s: f64,
    /// The hold phrase heard before it, as transcribed.
    pub phrase: Option<String>,
    /// Music or a tone played during it.
    pub music: bool,
}

impl Hold {
    pub fn interval(&self) -> SpeechInterval {
        SpeechInterval { start_s: self.start_s, end_s: self.end_s }
    }
}

/// Holds of a call: `agent_speech` is the agent's channel (the mix on mono recordings) with
/// music already taken out, `phrases` the hold phrases heard there as (end_s, text), `music`
/// the music and tones on that channel.
pub fn holds(
    agent_speech: &[SpeechInterval],
    phrases: &[(f64, String)],
    music: &[SpeechInterval],
    duration_s: f64,
    settings: &HoldSettings,
) -> Vec<Hold> {
    let mut silences = gaps(agent_speech);
    // Left on hold until the call ended: only music can tell that from a hang-up.
    if let Some(last) = agent_speech.last() {
        silences.push(SpeechInterval { start_s: last.end_s, end_s: duration_s });
    }
    let last_index = silences.len().saturating_sub(1);
    silences
        .into_iter()
        .enumerate()
        .filter(|(_, gap)| gap.duration_s() >= settings.min_s)
        .filter_map(|(i, gap)| {
            let phrase = phrases
                .iter()
                .filter(|(end_s, _)| *end_s <= gap.start_s + 0.5 && *end_s >= gap.start_s - settings.phrase_within_s)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, text)| text.clone());
            let music_s = intersection_total(&[gap], music);
            let music = music_s >= settings.music_min_s.min(gap.duration_s());
            let trailing = i == last_index;
            ((phrase.is_some() && !trailing) || music).then_some(Hold {
                start_s: gap.start_s,
                end_s: gap.end_s,
                phrase,
                music,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    #[test]
    fn a_phrase_or_music_makes_a_long_agent_silence_a_hold() {
        let agent = [iv(0.0, 5.0), iv(20.0, 25.0), iv(40.0, 45.0), iv(50.0, 55.0), iv(80.0, 85.0)];
        let phrases = [(4.8, "请稍等".to_string()), (49.0, "请稍等".to_string())];
        let music = [iv(26.0, 39.0)];
        let found = holds(&agent, &phrases, &music, 90.0, &HoldSettings::default());
        // 5-20: phrase; 25-40: music; 45-50: too short; 55-80: phrase said 6 s before it ends
        // at 49.0, within 10 s of the silence at 55.0.
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!((found[0].start_s, found[0].end_s, found[0].phrase.as_deref()), (5.0, 20.0, Some("请稍等")));
        assert!(found[1].music && found[1].phrase.is_none() && found[1].interval() == iv(25.0, 40.0));
        assert_eq!(found[2].interval(), iv(55.0, 80.0));
    }

    #[test]
    fn plain_silence_a_stale_phrase_and_a_hang_up_are_not_holds() {
        let agent = [iv(0.0, 5.0), iv(30.0, 35.0)];
        let stale = [(0.5, "please hold".to_string())];
        assert!(holds(&agent, &[], &[], 60.0, &HoldSettings::default()).is_empty());
        let s = HoldSettings { phrase_within_s: 3.0, ..Default::default() };
        assert!(holds(&agent, &stale, &[], 60.0, &s).is_empty(), "the phrase ended 4.5 s before the silence");
        // "Please hold" and then the customer hung up: nothing after, no music.
        let last = [(34.0, "please hold".to_string())];
        assert!(holds(&agent, &last, &[], 60.0, &HoldSettings::default()).is_empty());
        // Left with music until the call ended.
        let found = holds(&agent, &[], &[iv(36.0, 59.0)], 60.0, &HoldSettings::default());
        assert_eq!(found.iter().map(Hold::interval).collect::<Vec<_>>(), vec![iv(35.0, 60.0)]);
    }
}
