//! The plain records passed between stages. Times are seconds from the start of the call
//! (`*_s` fields); sample counts are at the rate named beside them.
//!
//! A call moves through four records, each owning what the next stage needs and nothing
//! more: [`CallSource`] (ingest) -> [`VoicedCall`] (read, decode, resample, speech activity;
//! the file's bytes and the original-rate audio are gone) -> [`TranscribedCall`] (words;
//! the audio is gone) -> [`ScoredCall`] (metrics, events, scorecard), which the sinks write.

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
    /// The agent's channel, or the mix of a mono recording: where holds and hold music are.
    pub fn is_agent_side(self) -> bool {
        matches!(self, Speaker::Agent | Speaker::Mixed)
    }

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
    /// A local path, or an object's URL (`s3://bucket/key`: see [`crate::storage::object`]).
    pub path: PathBuf,
    /// The recording's size as ingest found it (a file's metadata, an object store's
    /// listing); `None`: ask the file.
    pub size_bytes: Option<u64>,
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

/// What a recording is, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFacts {
    pub duration_s: f64,
    pub sample_rate_hz: u32,
    pub channels: usize,
    pub codec: &'static str,
}

/// Seconds spent in each stage (one call's, or summed over a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    pub read: f64,
    pub decode: f64,
    pub resample: f64,
    pub vad: f64,
    pub asr: f64,
    pub metrics_rules: f64,
    pub write: f64,
}

impl StageTimes {
    pub fn add(&mut self, other: &StageTimes) {
        self.read += other.read;
        self.decode += other.decode;
        self.resample += other.resample;
        self.vad += other.vad;
        self.asr += other.asr;
        self.metrics_rules += other.metrics_rules;
        self.write += other.write;
    }
}

/// A call after the CPU stages: 16 kHz speaker channels and where each has speech.
#[derive(Debug, Clone)]
pub struct VoicedCall {
    pub source: CallSource,
    pub content_sha256: String,
    pub facts: AudioFacts,
    pub channels: Vec<SpeakerAudio>,
    pub speech: Vec<(Speaker, Vec<SpeechInterval>)>,
    /// Music and tones on the agent channel (the mix on mono recordings), already taken out
    /// of its speech (see [`crate::vad::music`]).
    pub music: Vec<SpeechInterval>,
    pub loudness: Loudness,
    pub timings: StageTimes,
}

/// Each channel's loudness and its raised-voice events (see [`crate::loudness`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loudness {
    pub channels: Vec<(Speaker, crate::loudness::ChannelLoudness)>,
    pub events: Vec<Event>,
}

impl Loudness {
    pub fn of(&self, speaker: Speaker) -> Option<&crate::loudness::ChannelLoudness> {
        self.channels.iter().find(|(s, _)| *s == speaker).map(|(_, l)| l)
    }
}

impl VoicedCall {
    /// Bytes of audio this record holds (what the scheduler's memory budget counts).
    pub fn audio_bytes(&self) -> usize {
        self.channels.iter().map(|c| c.samples_16k.len() * std::mem::size_of::<f32>()).sum()
    }
}

/// A call with its words (none when transcription did not run); the audio is dropped.
#[derive(Debug, Clone)]
pub struct TranscribedCall {
    pub source: CallSource,
    pub content_sha256: String,
    pub facts: AudioFacts,
    pub speech: Vec<(Speaker, Vec<SpeechInterval>)>,
    pub music: Vec<SpeechInterval>,
    pub loudness: Loudness,
    /// The Whisper model's name; `None` when transcription did not run.
    pub model: Option<String>,
    pub language: Option<String>,
    /// Each transcribed channel's language (the one detected on most of its speech).
    pub channel_languages: Vec<(Speaker, String)>,
    pub utterances: Vec<Utterance>,
    pub dropped: crate::asr::filter::DropCounts,
    pub timings: StageTimes,
}

impl TranscribedCall {
    pub fn channel_language(&self, speaker: Speaker) -> Option<&str> {
        self.channel_languages.iter().find(|(s, _)| *s == speaker).map(|(_, l)| l.as_str())
    }
}

/// The scorecard of a transcribed call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub forbidden_hits: u32,
    pub required_missing: u32,
    pub qa_score: f64,
}

/// A call that went through every stage: what the sinks write.
#[derive(Debug, Clone)]
pub struct ScoredCall {
    pub call: TranscribedCall,
    pub metrics: crate::metrics::CallMetrics,
    pub events: Vec<Event>,
    /// The scorecard; `None` when nothing was transcribed (phrase rules need words).
    pub scores: Option<Scores>,
}

impl ScoredCall {
    /// A call that holds nothing but these utterances (for tests and tools that only need
    /// the words, such as redaction).
    pub fn of_utterances(call_id: &str, utterances: Vec<Utterance>) -> ScoredCall {
        let source = CallSource {
            size_bytes: None,
            call_id: call_id.into(),
            path: PathBuf::from(format!("{call_id}.wav")),
            agent_id: None,
            started_at: None,
            call_date: NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
            agent_channel: None,
        };
        let duration_s = utterances.iter().map(|u| u.end_s).fold(0.0, f64::max);
        ScoredCall {
            call: TranscribedCall {
                source,
                content_sha256: String::new(),
                facts: AudioFacts { duration_s, sample_rate_hz: 16_000, channels: 2, codec: "pcm_s16" },
                speech: vec![],
                music: vec![],
                loudness: Loudness::default(),
                model: None,
                language: None,
                channel_languages: vec![],
                utterances,
                dropped: Default::default(),
                timings: Default::default(),
            },
            metrics: Default::default(),
            events: vec![],
            scores: None,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedToken {
    pub text: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// One transcribed segment of one speaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Personal data was redacted here (see [`crate::privacy`]).
    Pii,
    /// A speaker stayed well above their own usual loudness (see [`crate::loudness`]).
    RaisedVoice,
    /// The call or a channel is in a language no phrase rule covers: qa_score is left null.
    NoRulesForLanguage,
    /// The customer was put on hold (see [`crate::metrics::hold`]).
    Hold,
    /// Music or a tone on the agent channel (see [`crate::vad::music`]).
    Music,
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
            EventKind::Pii => "pii",
            EventKind::RaisedVoice => "raised_voice",
            EventKind::NoRulesForLanguage => "no_rules_for_language",
            EventKind::Hold => "hold",
            EventKind::Music => "music",
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

/// Events in time order (then by kind), as the tables hold them.
pub fn sort_events(events: &mut [Event]) {
    events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.kind.cmp(&b.kind)));
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

/// Where a call failed: a fixed vocabulary for logs and the `failures` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Read,
    Decode,
    Resample,
    Vad,
    Transcribe,
    Score,
    /// Redaction, and the muted copy of the recording.
    Redact,
    Internal,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::Resample => "resample",
            Stage::Vad => "vad",
            Stage::Transcribe => "transcribe",
            Stage::Score => "score",
            Stage::Redact => "redact",
            Stage::Internal => "internal",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call failed, as a fixed vocabulary a query can group by (`failures.error_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    NotFound,
    NotRegularFile,
    SymlinkLoop,
    PermissionDenied,
    IoError,
    TooLarge,
    Empty,
    NotWav,
    UnsupportedFormat,
    Corrupt,
    InvalidSamples,
    TooLong,
    ManifestRow,
    /// A call date before 1970 or in the future (a wrong clock, a typo in the manifest).
    ImplausibleDate,
    DuplicateCallId,
    WorkerCrashed,
    TimeBudgetExceeded,
    WhisperError,
    Panic,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::NotFound => "not_found",
            ErrorType::NotRegularFile => "not_regular_file",
            ErrorType::SymlinkLoop => "symlink_loop",
            ErrorType::PermissionDenied => "permission_denied",
            ErrorType::IoError => "io_error",
            ErrorType::TooLarge => "too_large",
            ErrorType::Empty => "empty",
            ErrorType::NotWav => "not_wav",
            ErrorType::UnsupportedFormat => "unsupported_format",
            ErrorType::Corrupt => "corrupt",
            ErrorType::InvalidSamples => "invalid_samples",
            ErrorType::TooLong => "too_long",
            ErrorType::ManifestRow => "manifest_row",
            ErrorType::ImplausibleDate => "implausible_date",
            ErrorType::DuplicateCallId => "duplicate_call_id",
            ErrorType::WorkerCrashed => "worker_crashed",
            ErrorType::TimeBudgetExceeded => "time_budget_exceeded",
            ErrorType::WhisperError => "whisper_error",
            ErrorType::Panic => "panic",
        }
    }

    /// The type of a failed file-system call.
    pub fn of_io(e: &std::io::Error) -> ErrorType {
        match e.kind() {
            std::io::ErrorKind::NotFound => ErrorType::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorType::PermissionDenied,
            _ if e.raw_os_error() == Some(libc::ELOOP) => ErrorType::SymlinkLoop,
            _ => ErrorType::IoError,
        }
    }
}

/// One call that could not be processed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} ({}): {stage}: {reason}", call_id, path.display())]
pub struct CallFailure {
    pub call_id: String,
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, when they could be read.
    pub content_sha256: Option<String>,
    pub stage: Stage,
    pub error_type: ErrorType,
    pub reason: String,
}
