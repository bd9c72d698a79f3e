//! Transcription: one speaker channel (16 kHz samples + speech intervals) -> utterances.
//!
//! One [`Transcriber`] (a loaded whisper.cpp model) is shared by all workers; each worker
//! owns one [`AsrWorker`] (a whisper state). Only speech is decoded ([`windows`]); Chinese
//! output is normalised to Simplified; [`filter`] removes Whisper's known failure modes.
//! Tokens keep their own timestamps so phrase hits can point at the words.

pub mod filter;
pub mod windows;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use crate::record::{Speaker, SpeechInterval, TimedToken, Utterance};
use crate::textnorm::to_simplified;
use filter::{DropCounts, FilterSettings};

/// `[asr]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrSettings {
    /// Spoken language: "auto" (detect per window) or a Whisper code such as "zh" or "en".
    /// Default "auto".
    pub language: String,
    /// Beam width; 1 is greedy decoding. Default 5.
    pub beam_size: u32,
    /// Re-decode at higher temperature when a window decodes badly (repetition, low
    /// log-probability). Turning it off makes base loop on noisy audio. Default true.
    pub temperature_fallback: bool,
    /// Threads per whisper state; 0 = the machine's cores divided by `--jobs`. Default 0.
    pub threads: u32,
    /// Longest stretch of audio (seconds) sent to Whisper at once. Default 28.
    pub max_window_s: f64,
    /// Audio kept around each speech interval (seconds). Default 0.2.
    pub window_pad_s: f64,
    /// Use flash attention in whisper.cpp. Default false.
    pub flash_attention: bool,
    pub filter: FilterSettings,
}

impl Default for AsrSettings {
    fn default() -> Self {
        AsrSettings {
            language: "auto".into(),
            beam_size: 5,
            temperature_fallback: true,
            threads: 0,
            max_window_s: 28.0,
            window_pad_s: 0.2,
            flash_attention: false,
            filter: FilterSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("cannot load Whisper model {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    #[error(
        "unknown language {0:?} (use \"auto\" or a Whisper language code such as \"zh\" or \"en\")"
    )]
    Language(String),
    #[error("whisper failed on the {speaker} channel at {at_s:.1} s: {reason}")]
    Decode {
        speaker: Speaker,
        at_s: f64,
        reason: String,
    },
}

/// A loaded model, shared by all workers.
pub struct Transcriber {
    context: WhisperContext,
    settings: AsrSettings,
    pub model_name: String,
}

/// What one channel produced.
#[derive(Debug, Clone, Default)]
pub struct ChannelTranscript {
    pub utterances: Vec<Utterance>,
    pub dropped: DropCounts,
    /// Detected (or configured) language and the seconds of audio it was detected on.
    pub languages: Vec<(String, f64)>,
}

const SAMPLE_RATE: f64 = 16_000.0;
/// whisper.cpp refuses input shorter than one second; shorter windows are padded with silence.
const MIN_WINDOW_SAMPLES: usize = 16_000 + 1_600;

impl Transcriber {
    pub fn load(path: &Path, settings: AsrSettings) -> Result<Transcriber, AsrError> {
        if settings.language != "auto" && whisper_rs::get_lang_id(&settings.language).is_none() {
            return Err(AsrError::Language(settings.language.clone()));
        }
        whisper_rs::install_logging_hooks();
        let mut params = WhisperContextParameters::default();
        params.flash_attn(settings.flash_attention);
        let context =
            WhisperContext::new_with_params(path, params).map_err(|e| AsrError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let model_name = path
            .file_stem()
            .map_or_else(|| "whisper".into(), |s| s.to_string_lossy().into_owned());
        Ok(Transcriber {
            context,
            settings,
            model_name,
        })
    }

    pub fn settings(&self) -> &AsrSettings {
        &self.settings
    }

    pub fn worker(&self, threads: u32) -> Result<AsrWorker<'_>, AsrError> {
        let state = self.context.create_state().map_err(|e| AsrError::Load {
            path: PathBuf::from(&self.model_name),
            reason: format!("cannot create a whisper state: {e}"),
        })?;
        Ok(AsrWorker {
            transcriber: self,
            state,
            threads: threads.max(1),
        })
    }
}

/// One whisper state: transcribes one channel at a time.
pub struct AsrWorker<'t> {
    transcriber: &'t Transcriber,
    state: WhisperState,
    threads: u32,
}

/// Decoding parameters for one window.
fn full_params(s: &AsrSettings, threads: u32) -> FullParams<'_, '_> {
    let strategy = if s.beam_size > 1 {
        SamplingStrategy::BeamSearch {
            beam_size: s.beam_size as i32,
            patience: -1.0,
        }
    } else {
        SamplingStrategy::Greedy { best_of: 1 }
    };
    let mut p = FullParams::new(strategy);
    p.set_n_threads(threads as i32);
    p.set_language(Some(&s.language));
    p.set_translate(false);
    p.set_no_context(true);
    p.set_token_timestamps(true);
    p.set_suppress_blank(true);
    p.set_suppress_nst(true);
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_special(false);
    p.set_print_timestamps(false);
    p.set_temperature(0.0);
    p.set_temperature_inc(if s.temperature_fallback { 0.2 } else { 0.0 });
    p
}

impl<'t> AsrWorker<'t> {
    /// Transcribe the speech of one channel.
    pub fn transcribe(
        &mut self,
        speaker: Speaker,
        samples_16k: &[f32],
        speech: &[SpeechInterval],
    ) -> Result<ChannelTranscript, AsrError> {
        let s = &self.transcriber.settings;
        let length_s = samples_16k.len() as f64 / SAMPLE_RATE;
        let mut out = ChannelTranscript::default();
        let mut utterances = Vec::new();
        for window in windows::plan_windows(speech, s.window_pad_s, s.max_window_s, length_s) {
            let from = (window.start_s * SAMPLE_RATE) as usize;
            let to = ((window.end_s * SAMPLE_RATE) as usize).min(samples_16k.len());
            let mut audio = samples_16k[from..to].to_vec();
            if audio.len() < MIN_WINDOW_SAMPLES {
                audio.resize(MIN_WINDOW_SAMPLES, 0.0);
            }
            let transcriber: &'t Transcriber = self.transcriber;
            let params = full_params(&transcriber.settings, self.threads);
            self.state
                .full(params, &audio)
                .map_err(|e| AsrError::Decode {
                    speaker,
                    at_s: window.start_s,
                    reason: e.to_string(),
                })?;
            let language = whisper_rs::get_lang_str(self.state.full_lang_id_from_state())
                .unwrap_or("unknown")
                .to_string();
            let is_chinese = language == "zh";
            out.languages
                .push((language, window.end_s - window.start_s));
            utterances.extend(self.collect_segments(
                speaker,
                window.start_s,
                window.end_s,
                is_chinese,
            ));
        }
        let (kept, dropped) = filter::filter(utterances, speech, &s.filter);
        out.utterances = kept;
        out.dropped = dropped;
        Ok(out)
    }

    /// Read the state's segments, mapping times to call time.
    fn collect_segments(
        &self,
        speaker: Speaker,
        offset_s: f64,
        window_end_s: f64,
        is_chinese: bool,
    ) -> Vec<Utterance> {
        let eot = self.transcriber.context.token_eot();
        let at = |centiseconds: i64| (offset_s + centiseconds as f64 / 100.0).min(window_end_s);
        let script = |text: &str| {
            if is_chinese {
                to_simplified(text)
            } else {
                text.to_string()
            }
        };
        let mut utterances = Vec::new();
        for segment in self.state.as_iter() {
            let mut tokens: Vec<TimedToken> = Vec::new();
            let (mut pending, mut pending_start) = (Vec::<u8>::new(), None);
            let (mut logprob_sum, mut logprob_count) = (0.0f32, 0u32);
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                let data = token.token_data();
                if data.id >= eot {
                    continue;
                }
                logprob_sum += data.plog;
                logprob_count += 1;
                let Ok(bytes) = token.to_bytes() else {
                    continue;
                };
                pending.extend_from_slice(bytes);
                let start = *pending_start.get_or_insert(data.t0);
                // A Chinese character can span tokens: emit once the bytes are whole UTF-8.
                if let Ok(text) = std::str::from_utf8(&pending) {
                    tokens.push(TimedToken {
                        text: script(text),
                        start_s: at(start),
                        end_s: at(data.t1.max(start)),
                    });
                    pending.clear();
                    pending_start = None;
                }
            }
            let text: String = tokens
                .iter()
                .map(|t| t.text.as_str())
                .collect::<String>()
                .trim()
                .to_string();
            if text.is_empty() {
                continue;
            }
            utterances.push(Utterance {
                speaker,
                start_s: at(segment.start_timestamp()),
                end_s: at(segment.end_timestamp()),
                text,
                avg_logprob: if logprob_count > 0 {
                    logprob_sum / logprob_count as f32
                } else {
                    0.0
                },
                no_speech_prob: segment.no_speech_probability(),
                tokens,
            });
        }
        utterances
    }
}
