//! Speaking rate.
//!
//! **Definition.** Chinese is measured in characters per minute (each Han character counts
//! one, each Latin-script word one), other languages in words per minute. A speaker's rate is
//! the units in their utterances over their detected speech time. An utterance lasting at
//! least `rate.min_utterance_s` whose own rate exceeds `rate.max_cpm` (Chinese) or
//! `rate.max_wpm` is a `fast_speech` event.
//!
//! **Why it matters.** "避免说话过快": customers on the phone cannot ask the agent to slow down
//! as easily as face to face.
//!
//! **Example.** 25 characters in a 4.0 s utterance is 375 cpm: over the default 280.

use serde::{Deserialize, Serialize};

use crate::record::{Event, EventKind, Utterance};
use crate::textnorm::is_han;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Characters per minute (Chinese).
    Cpm,
    /// Words per minute.
    Wpm,
}

impl RateUnit {
    pub fn for_language(language: &str) -> RateUnit {
        if matches!(language, "zh" | "yue") {
            RateUnit::Cpm
        } else {
            RateUnit::Wpm
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RateUnit::Cpm => "cpm",
            RateUnit::Wpm => "wpm",
        }
    }
}

/// `[rate]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateSettings {
    /// Fastest acceptable Chinese utterance, characters per minute. Default 280.
    pub max_cpm: f64,
    /// Fastest acceptable utterance in other languages, words per minute. Default 190.
    pub max_wpm: f64,
    /// Shorter utterances are not judged (a quick "好的好的" is not fast talk). Default 2.0 s.
    pub min_utterance_s: f64,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings { max_cpm: 280.0, max_wpm: 190.0, min_utterance_s: 2.0 }
    }
}

/// Units of speech in a text: Han characters plus Latin words for Chinese, words otherwise.
pub fn units(text: &str, unit: RateUnit) -> usize {
    match unit {
        RateUnit::Wpm => text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count(),
        RateUnit::Cpm => {
            let han = text.chars().filter(|&c| is_han(c)).count();
            let latin_words = text
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.chars().any(|c| c.is_ascii_alphabetic()))
                .count();
            han + latin_words
        }
    }
}

/// Rate over a span of speech, in units per minute.
pub fn rate(units: usize, speech_s: f64) -> Option<f64> {
    (speech_s > 0.0).then(|| units as f64 * 60.0 / speech_s)
}

pub fn fast_speech_events(utterances: &[Utterance], unit: RateUnit, settings: &RateSettings) -> Vec<Event> {
    let limit = match unit {
        RateUnit::Cpm => settings.max_cpm,
        RateUnit::Wpm => settings.max_wpm,
    };
    utterances
        .iter()
        .filter(|u| u.end_s - u.start_s >= settings.min_utterance_s)
        .filter_map(|u| {
            let r = rate(units(&u.text, unit), u.end_s - u.start_s)?;
            (r > limit).then(|| {
                Event::metric(
                    EventKind::FastSpeech,
                    Some(u.speaker),
                    u.start_s,
                    u.end_s,
                    format!("{r:.0} {} (limit {limit:.0})", unit.as_str()),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Speaker;

    fn utt(text: &str, start_s: f64, end_s: f64) -> Utterance {
        Utterance::untimed(Speaker::Agent, start_s, end_s, text)
    }

    #[test]
    fn units_count_han_characters_and_latin_words() {
        assert_eq!(units("您好，请问有什么可以帮您？", RateUnit::Cpm), 11);
        assert_eq!(units("我的iPhone 15坏了", RateUnit::Cpm), 4 + 1);
        assert_eq!(units("Thank you for calling, goodbye.", RateUnit::Wpm), 5);
        assert_eq!(RateUnit::for_language("zh"), RateUnit::Cpm);
        assert_eq!(RateUnit::for_language("en"), RateUnit::Wpm);
    }

    #[test]
    fn fast_utterances_are_events_and_short_ones_are_not_judged() {
        let s = RateSettings::default();
        // 25 chars in 4 s = 375 cpm; 10 chars in 4 s = 150 cpm; 8 chars in 1 s = too short to judge.
        let u = [utt(&"快".repeat(25), 0.0, 4.0), utt(&"慢".repeat(10), 5.0, 9.0), utt(&"短".repeat(8), 10.0, 11.0)];
        let events = fast_speech_events(&u, RateUnit::Cpm, &s);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].start_s, 0.0);
        assert!(events[0].detail.starts_with("375 cpm"));
        // Exactly at the limit is not over it: 280 cpm = 14 chars in 3 s.
        assert!(fast_speech_events(&[utt(&"字".repeat(14), 0.0, 3.0)], RateUnit::Cpm, &s).is_empty());
        assert_eq!(rate(30, 0.0), None);
    }
}
