//! The plain records passed between stages. Times are seconds from the start of the call
//! (`*_s` fields); sample counts are at the rate named beside them.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Who a channel (and so an utterance) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Agent,
    Customer,
    /// A mono recording: both parties on one channel.
    Mixed,
}

impl Speaker {
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Agent => "agent",
            Speaker::Customer => "customer",
            Speaker::Mixed => "mixed",
        }
    }
}

impl fmt::Display for Speaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call to process, as found by ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSource {
    pub call_id: String,
    pub path: PathBuf,
    pub agent_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// Partition date: from `started_at`, else the file's modification time.
    pub call_date: NaiveDate,
    /// Per-call override of the agent's channel index.
    pub agent_channel: Option<usize>,
}

/// Decoded audio at its original rate, one buffer per channel, samples in [-1, 1].
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    pub sample_rate_hz: u32,
    pub channels: Vec<Vec<f32>>,
    /// Codec as found in the file, e.g. "pcm_s16", "mulaw".
    pub codec: &'static str,
}

impl DecodedAudio {
    pub fn duration_s(&self) -> f64 {
        self.channels.first().map_or(0.0, |c| c.len() as f64 / self.sample_rate_hz as f64)
    }
}

/// One speaker's channel at 16 kHz.
#[derive(Debug, Clone)]
pub struct SpeakerAudio {
    pub speaker: Speaker,
    pub samples_16k: Vec<f32>,
}

/// A span of detected speech on one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechInterval {
    pub start_s: f64,
    pub end_s: f64,
}

impl SpeechInterval {
    pub fn duration_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// A word piece with its own timing (Whisper token timestamps).
#[derive(Debug, Clone, PartialEq)]
pub struct TimedToken {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// One transcribed segment of one speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub speaker: Speaker,
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub tokens: Vec<TimedToken>,
}

impl Utterance {
    /// An utterance without token times or confidence (for tests and tools).
    pub fn untimed(speaker: Speaker, start_s: f64, end_s: f64, text: &str) -> Utterance {
        Utterance { speaker, start_s, end_s, text: text.into(), avg_logprob: 0.0, no_speech_prob: 0.0, tokens: vec![] }
    }
}

/// What an event row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Silence,
    Interruption,
    FastSpeech,
    ForbiddenPhrase,
    RequiredPhraseMissing,
    MetricThreshold,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Silence => "silence",
            EventKind::Interruption => "interruption",
            EventKind::FastSpeech => "fast_speech",
            EventKind::ForbiddenPhrase => "forbidden_phrase",
            EventKind::RequiredPhraseMissing => "required_phrase_missing",
            EventKind::MetricThreshold => "metric_threshold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }
}

/// Something a QA manager may want to listen to, at a time in the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    /// The interrupter, the fast speaker, the one who said the phrase; `None` for silence.
    pub speaker: Option<Speaker>,
    pub start_s: f64,
    pub end_s: f64,
    pub rule_id: Option<String>,
    pub severity: Option<Severity>,
    /// Human-readable specifics (what was matched, how fast, who was interrupted).
    pub detail: String,
    /// Phrase hits: the words as recognised, whether they matched exactly or by sound, and
    /// how closely (1.0 = identical sound).
    pub matched_text: Option<String>,
    pub match_type: Option<&'static str>,
    pub similarity: Option<f64>,
    /// Points this event deducts from the call's qa_score (a rule deducts once per call).
    pub points: Option<f64>,
}

impl Event {
    /// A plain metric event (no rule, no deduction).
    pub fn metric(kind: EventKind, speaker: Option<Speaker>, start_s: f64, end_s: f64, detail: String) -> Event {
        Event {
            kind,
            speaker,
            start_s,
            end_s,
            rule_id: None,
            severity: None,
            detail,
            matched_text: None,
            match_type: None,
            similarity: None,
            points: None,
        }
    }
}
