//! Keep Whisper's known failure modes out of the tables.
//!
//! In: utterances and the channel's speech intervals. Out: the utterances that are speech,
//! and counts of what was dropped and why. Dropped: text Whisper is known to produce on
//! silence or noise (subtitle credits, "thanks for watching"), runaway repetition, segments
//! Whisper itself judged to be no speech, and text placed where the speech detector heard
//! nothing.

use serde::{Deserialize, Serialize};

use crate::record::{SpeechInterval, Utterance};
use crate::textnorm::comparison_key;
use crate::vad::speech_within;

/// Phrases Whisper emits on silence or noise, learned from subtitle files in its training
/// data. Compared on comparison keys.
pub const KNOWN_HALLUCINATIONS: &[&str] = &[
    "字幕由Amara.org社群提供",
    "字幕由Amara.org社区提供",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "请不吝点赞 订阅 转发 打赏",
    "点赞订阅转发打赏",
    "明镜与点点栏目",
    "中文字幕志愿者",
    "字幕志愿者",
    "谢谢观看",
    "感谢观看",
    "优优独播剧场",
    "Subtitles by the Amara.org community",
    "Thanks for watching!",
    "Thank you for watching.",
    "Please subscribe to my channel",
    "ご視聴ありがとうございました",
];

/// Why an utterance was dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    pub known_phrase: u32,
    pub repetition: u32,
    pub no_speech: u32,
    pub outside_speech: u32,
}

impl DropCounts {
    pub fn total(&self) -> u32 {
        self.known_phrase + self.repetition + self.no_speech + self.outside_speech
    }

    pub fn add(&mut self, other: DropCounts) {
        self.known_phrase += other.known_phrase;
        self.repetition += other.repetition;
        self.no_speech += other.no_speech;
        self.outside_speech += other.outside_speech;
    }
}

/// True when the text is (mostly) a known hallucination phrase.
pub fn is_known_hallucination(text: &str) -> bool {
    let key = comparison_key(text);
    if key.is_empty() {
        return false;
    }
    KNOWN_HALLUCINATIONS.iter().any(|phrase| {
        let p = comparison_key(phrase);
        // The phrase must make up most of the utterance: a customer may say 谢谢观看 in passing.
        key.contains(&p) && p.chars().count() * 2 >= key.chars().count()
    })
}

/// True when a short unit repeats back to back and covers most of the text ("八八八八...",
/// "the the the the"). Units are characters for Chinese and words otherwise.
pub fn is_runaway_repetition(text: &str) -> bool {
    let units: Vec<String> = if text.chars().any(crate::textnorm::is_han) {
        comparison_key(text).chars().map(String::from).collect()
    } else {
        crate::textnorm::words(text)
    };
    let n = units.len();
    if n < 8 {
        return false;
    }
    for period in 1..=(n / 4).min(8) {
        let mut best_run = 0;
        let mut run = 0;
        for i in period..n {
            if units[i] == units[i - period] {
                run += 1;
                best_run = best_run.max(run);
            } else {
                run = 0;
            }
        }
        // Repeated at least 4 times and covering over half of the utterance.
        if best_run + period >= 4 * period && (best_run + period) * 2 > n {
            return true;
        }
    }
    false
}

/// Thresholds of the filter (`[asr.filter]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSettings {
    /// Drop when Whisper's no-speech probability is above this and ... Default 0.6.
    pub no_speech_prob: f32,
    /// ... the average token log-probability is below this. Default -1.0.
    pub avg_logprob: f32,
    /// Drop when less than this share of the utterance's time span is detected speech. Default 0.15.
    pub min_speech_coverage: f64,
}

impl Default for FilterSettings {
    fn default() -> Self {
        FilterSettings { no_speech_prob: 0.6, avg_logprob: -1.0, min_speech_coverage: 0.15 }
    }
}

pub fn filter(
    utterances: Vec<Utterance>,
    speech: &[SpeechInterval],
    settings: &FilterSettings,
) -> (Vec<Utterance>, DropCounts) {
    let mut counts = DropCounts::default();
    let kept = utterances
        .into_iter()
        .filter(|u| {
            let span = (u.end_s - u.start_s).max(0.01);
            let slot = if is_known_hallucination(&u.text) {
                &mut counts.known_phrase
            } else if is_runaway_repetition(&u.text) {
                &mut counts.repetition
            } else if u.no_speech_prob > settings.no_speech_prob && u.avg_logprob < settings.avg_logprob {
                &mut counts.no_speech
            } else if speech_within(speech, u.start_s, u.end_s) / span < settings.min_speech_coverage {
                &mut counts.outside_speech
            } else {
                return true;
            };
            *slot += 1;
            false
        })
        .collect();
    (kept, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Speaker;

    fn utt(text: &str, start_s: f64, end_s: f64) -> Utterance {
        Utterance::untimed(Speaker::Agent, start_s, end_s, text)
    }

    #[test]
    fn subtitle_credits_are_dropped_but_real_sentences_kept() {
        assert!(is_known_hallucination("字幕由Amara.org社群提供"));
        assert!(is_known_hallucination("請不吝點贊 訂閱 轉發 打賞支持明鏡與點點欄目"));
        assert!(!is_known_hallucination("好的谢谢观看我们的产品介绍以后有问题随时联系我们客服"));
        assert!(!is_known_hallucination("您好请问有什么可以帮您"));
    }

    #[test]
    fn runaway_repetition_is_detected() {
        assert!(is_runaway_repetition("八八八八八八八八八八八八"));
        assert!(is_runaway_repetition("我知道我知道我知道我知道我知道"));
        assert!(is_runaway_repetition("thank you thank you thank you thank you thank you"));
        assert!(!is_runaway_repetition("广州市房地产中介协会分析"));
        assert!(!is_runaway_repetition("好好好"));
        assert!(!is_runaway_repetition("ask not what your country can do for you ask what you can do"));
    }

    #[test]
    fn filter_counts_each_reason() {
        let speech = [SpeechInterval { start_s: 0.0, end_s: 5.0 }];
        let mut no_speech = utt("嗯", 1.0, 2.0);
        no_speech.no_speech_prob = 0.9;
        no_speech.avg_logprob = -1.5;
        let (kept, counts) = filter(
            vec![
                utt("您好请问有什么可以帮您", 0.5, 3.0),
                utt("字幕由Amara.org社群提供", 3.0, 4.0),
                utt("八八八八八八八八八八八八", 1.0, 4.0),
                no_speech,
                utt("谢谢", 10.0, 12.0),
            ],
            &speech,
            &FilterSettings::default(),
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(counts, DropCounts { known_phrase: 1, repetition: 1, no_speech: 1, outside_speech: 1 });
        assert_eq!(counts.total(), 4);
    }
}
