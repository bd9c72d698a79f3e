//! Transcription: one speaker channel (16 kHz samples + speech intervals) -> utterances.
//!
//! One [`Transcriber`] (a loaded whisper.cpp model) is shared by all workers; each worker
//! owns one [`AsrWorker`] (a whisper state). Only speech is decoded ([`windows`]); Chinese
//! output is normalised to Simplified; [`filter`] removes Whisper's known failure modes.
//! Tokens keep their own timestamps so phrase hits can point at the words.

pub mod filter;
pub mod windows;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::debug;
use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters,
    WhisperState,
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
    /// Silence placed between speech intervals packed into one window (seconds); long enough
    /// that Whisper ends a segment there. Default 1.0.
    pub window_gap_s: f64,
    /// Shrink the encoder's context to the window's length instead of a full 30 s (whisper.cpp
    /// `audio_ctx`, plus 2 s): measured 1.8x faster end to end at about the same CER/WER on the
    /// benchmark calls (README, Throughput). Default true.
    pub fit_audio_ctx: bool,
    /// Decode again, on their own, the packed pieces of a window that Whisper returned no
    /// text for when they hold at least this much detected speech (seconds); 0 turns the
    /// second pass off. Default 1.0.
    pub retry_min_speech_s: f64,
    /// Use flash attention in whisper.cpp (turns off `dtw_timestamps`). Default false.
    pub flash_attention: bool,
    /// Word timing by dynamic time warping over the model's alignment heads: far more
    /// precise than whisper.cpp's heuristic token times, which drift by up to a second.
    /// Default true.
    pub dtw_timestamps: bool,
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
            window_gap_s: 1.0,
            fit_audio_ctx: true,
            retry_min_speech_s: 1.0,
            flash_attention: false,
            dtw_timestamps: true,
            filter: FilterSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("cannot load Whisper model {}: {reason}", path.display())]
    Load { path: PathBuf, reason: String },
    #[error("unknown language {0:?} (use \"auto\" or a Whisper language code such as \"zh\" or \"en\")")]
    Language(String),
    #[error("whisper failed on the {speaker} channel at {at_s:.1} s: {reason}")]
    Decode { speaker: Speaker, at_s: f64, reason: String },
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
        let load_error = |reason: String| AsrError::Load { path: path.to_path_buf(), reason };
        let file = std::fs::File::open(path).map_err(|e| load_error(e.to_string()))?;
        let hparams =
            crate::model::ggml::read_hparams(std::io::BufReader::new(file)).map_err(|e| load_error(e.to_string()))?;
        let mut params = WhisperContextParameters::default();
        params.flash_attn(settings.flash_attention);
        if settings.dtw_timestamps && !settings.flash_attention {
            params.dtw_parameters(DtwParameters { mode: dtw_mode(&hparams), ..Default::default() });
        }
        let context = WhisperContext::new_with_params(path, params)
            .map_err(|e| AsrError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        let model_name = path.file_stem().map_or_else(|| "whisper".into(), |s| s.to_string_lossy().into_owned());
        Ok(Transcriber { context, settings, model_name })
    }

    pub fn settings(&self) -> &AsrSettings {
        &self.settings
    }

    pub fn worker(&self, threads: u32) -> Result<AsrWorker<'_>, AsrError> {
        let state = self.context.create_state().map_err(|e| AsrError::Load {
            path: PathBuf::from(&self.model_name),
            reason: format!("cannot create a whisper state: {e}"),
        })?;
        Ok(AsrWorker { transcriber: self, state, threads: threads.max(1) })
    }
}

/// One whisper state: transcribes one channel at a time.
pub struct AsrWorker<'t> {
    transcriber: &'t Transcriber,
    state: WhisperState,
    threads: u32,
}

/// The alignment heads of the standard Whisper sizes, recognised by their shape; other
/// models use their top half of text layers.
fn dtw_mode(hp: &crate::model::ggml::HyperParams) -> DtwMode<'static> {
    let english_only = hp.n_vocab < 51865;
    let preset = match (hp.n_text_layer, hp.n_text_state, english_only) {
        (4, 384, true) => DtwModelPreset::TinyEn,
        (4, 384, false) => DtwModelPreset::Tiny,
        (6, 512, true) => DtwModelPreset::BaseEn,
        (6, 512, false) => DtwModelPreset::Base,
        (12, 768, true) => DtwModelPreset::SmallEn,
        (12, 768, false) => DtwModelPreset::Small,
        (24, 1024, true) => DtwModelPreset::MediumEn,
        (24, 1024, false) => DtwModelPreset::Medium,
        _ => return DtwMode::TopMost { n_top: (hp.n_text_layer / 2).max(1) },
    };
    DtwMode::ModelPreset { model_preset: preset }
}

/// Encoder frames for a window of `samples` (1500 frames span 30 s) plus a margin of 2 s.
/// On the benchmark calls a 4 s margin cost about 15% more time at the same CER/WER; with
/// less than 2 s Whisper ends early more often (the second pass catches what it drops).
fn fitted_audio_ctx(samples: usize) -> i32 {
    const MARGIN_FRAMES: i32 = 100;
    let frames = (samples as f64 / SAMPLE_RATE / 30.0 * 1500.0).ceil() as i32;
    (frames + MARGIN_FRAMES).min(1500)
}

/// Pieces of a decoded window that no utterance came from although they hold at least
/// `min_speech_s` of detected speech. Whisper sometimes ends its transcript early (after a
/// quiet or far-field stretch) or passes over a piece; decoded again without their
/// neighbours, such pieces are usually transcribed.
fn skipped_pieces(window: &windows::Window, found: &[Utterance], min_speech_s: f64) -> Vec<windows::Piece> {
    window
        .pieces
        .iter()
        .filter(|p| p.speech_end_s - p.speech_start_s >= min_speech_s)
        .filter(|p| !found.iter().any(|u| u.end_s > p.call_start_s && u.start_s < p.call_end_s))
        .copied()
        .collect()
}

/// Decoding parameters for one window.
fn full_params(s: &AsrSettings, threads: u32) -> FullParams<'_, '_> {
    let strategy = if s.beam_size > 1 {
        SamplingStrategy::BeamSearch { beam_size: s.beam_size as i32, patience: -1.0 }
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
        let mut queue: VecDeque<(windows::Window, bool)> =
            windows::plan_windows(speech, s.window_pad_s, s.window_gap_s, s.max_window_s, length_s)
                .into_iter()
                .map(|w| (w, false))
                .collect();
        while let Some((window, is_retry)) = queue.pop_front() {
            let mut audio = window.gather(samples_16k);
            if audio.len() < MIN_WINDOW_SAMPLES {
                audio.resize(MIN_WINDOW_SAMPLES, 0.0);
            }
            let at_s = window.pieces[0].call_start_s;
            let transcriber: &'t Transcriber = self.transcriber;
            let mut params = full_params(&transcriber.settings, self.threads);
            if transcriber.settings.fit_audio_ctx {
                params.set_audio_ctx(fitted_audio_ctx(audio.len()));
            }
            self.state.full(params, &audio).map_err(|e| AsrError::Decode { speaker, at_s, reason: e.to_string() })?;
            let language =
                whisper_rs::get_lang_str(self.state.full_lang_id_from_state()).unwrap_or("unknown").to_string();
            let is_chinese = language == "zh";
            out.languages.push((language, window.len_s));
            let found = self.collect_utterances(speaker, &window, is_chinese);
            if !is_retry && s.retry_min_speech_s > 0.0 {
                let skipped = skipped_pieces(&window, &found, s.retry_min_speech_s);
                if !skipped.is_empty() {
                    debug!(
                        ?speaker,
                        at_s,
                        pieces = skipped.len(),
                        "Whisper skipped speech; decoding it again on its own"
                    );
                    let retries = windows::pack(skipped, s.window_gap_s, s.max_window_s);
                    for retry in retries.into_iter().rev() {
                        queue.push_front((retry, true));
                    }
                }
            }
            utterances.extend(found);
        }
        let (kept, dropped) = filter::filter(utterances, speech, &s.filter);
        out.utterances = kept;
        out.dropped = dropped;
        Ok(out)
    }

    /// Read the state's segments as utterances in call time: a segment's tokens are split by
    /// the speech piece they fall in, and an utterance that is alone in its piece takes the
    /// piece's detected speech bounds (more precise than Whisper's timestamps).
    fn collect_utterances(&self, speaker: Speaker, window: &windows::Window, is_chinese: bool) -> Vec<Utterance> {
        struct Group {
            segment: i32,
            piece: usize,
            tokens: Vec<TimedToken>,
            logprobs: Vec<f32>,
            no_speech_prob: f32,
        }
        let eot = self.transcriber.context.token_eot();
        let script = |text: &str| {
            if is_chinese {
                to_simplified(text)
            } else {
                text.to_string()
            }
        };
        let mut groups: Vec<Group> = Vec::new();
        for segment in self.state.as_iter() {
            let (seg_t0, seg_t1) = (segment.start_timestamp() as f64 / 100.0, segment.end_timestamp() as f64 / 100.0);
            let (mut pending, mut pending_t0, mut pending_logprob) = (Vec::<u8>::new(), None, 0.0f32);
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                let data = token.token_data();
                if data.id >= eot {
                    continue;
                }
                let Ok(bytes) = token.to_bytes() else {
                    continue;
                };
                pending.extend_from_slice(bytes);
                pending_logprob += data.plog;
                // t_dtw is the token's onset by alignment (-1 when DTW is off).
                let onset = if data.t_dtw >= 0 { data.t_dtw } else { data.t0 };
                let t0 = *pending_t0.get_or_insert((onset as f64 / 100.0).clamp(seg_t0, seg_t1));
                // A Chinese character can span tokens: emit once the bytes are whole UTF-8.
                let Ok(text) = std::str::from_utf8(&pending) else {
                    continue;
                };
                let t1 = (data.t1 as f64 / 100.0).clamp(t0, seg_t1);
                let piece = window.piece_at(if data.t_dtw >= 0 { t0 } else { (t0 + t1) / 2.0 });
                let timed =
                    TimedToken { text: script(text), start_s: window.to_call_time(t0), end_s: window.to_call_time(t1) };
                match groups.last_mut() {
                    Some(g) if g.segment == segment.segment_index() && g.piece == piece => {
                        g.tokens.push(timed);
                        g.logprobs.push(pending_logprob);
                    }
                    _ => groups.push(Group {
                        segment: segment.segment_index(),
                        piece,
                        tokens: vec![timed],
                        logprobs: vec![pending_logprob],
                        no_speech_prob: segment.no_speech_probability(),
                    }),
                }
                pending.clear();
                pending_t0 = None;
                pending_logprob = 0.0;
            }
        }
        let groups_in_piece = |piece: usize| groups.iter().filter(|g| g.piece == piece).count();
        groups
            .iter()
            .filter_map(|g| {
                let text = g.tokens.iter().map(|t| t.text.as_str()).collect::<String>().trim().to_string();
                if text.is_empty() {
                    return None;
                }
                let piece = &window.pieces[g.piece];
                let (start_s, end_s) = if groups_in_piece(g.piece) == 1 {
                    (piece.speech_start_s, piece.speech_end_s)
                } else {
                    let start = g.tokens[0].start_s.clamp(piece.speech_start_s, piece.speech_end_s);
                    (start, g.tokens[g.tokens.len() - 1].end_s.clamp(start, piece.speech_end_s))
                };
                Some(Utterance {
                    speaker,
                    start_s,
                    end_s,
                    text,
                    avg_logprob: g.logprobs.iter().sum::<f32>() / g.logprobs.len() as f32,
                    no_speech_prob: g.no_speech_prob,
                    tokens: g.tokens.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows::{plan_windows, Window};

    fn utterance(start_s: f64, end_s: f64) -> Utterance {
        Utterance::untimed(Speaker::Customer, start_s, end_s, "好的")
    }

    fn window() -> Window {
        let speech =
            [(1.0, 3.0), (8.0, 8.5), (12.0, 20.0), (25.0, 27.0)].map(|(a, b)| SpeechInterval { start_s: a, end_s: b });
        plan_windows(&speech, 0.2, 1.0, 28.0, 30.0).remove(0)
    }

    #[test]
    fn pieces_without_text_are_decoded_again_unless_too_short() {
        let w = window();
        assert_eq!(w.pieces.len(), 4);
        // Text came from the first piece only: the 0.5 s piece is too short to retry.
        let skipped = skipped_pieces(&w, &[utterance(1.0, 3.0)], 1.0);
        let starts: Vec<f64> = skipped.iter().map(|p| p.speech_start_s).collect();
        assert_eq!(starts, vec![12.0, 25.0]);
        // Every piece with enough speech has text: nothing to retry.
        let all = [utterance(1.0, 3.0), utterance(12.5, 19.0), utterance(25.0, 26.0)];
        assert!(skipped_pieces(&w, &all, 1.0).is_empty());
    }

    #[test]
    fn encoder_context_fits_the_window_with_a_margin() {
        assert_eq!(fitted_audio_ctx(16_000 * 10), 600);
        assert_eq!(fitted_audio_ctx(16_000 * 29), 1500);
    }
}
