//! Transcription: one speaker channel (16 kHz samples + speech intervals) -> utterances.
//!
//! [`transcribe_channel`] plans decode windows over the channel's speech ([`windows`]), hands
//! each to a [`WindowDecoder`] and turns Whisper's raw output back into utterances in call
//! time; Chinese output is normalised to Simplified; [`filter`] removes Whisper's known
//! failure modes. Tokens keep their own timestamps so phrase hits can point at the words.
//!
//! The decoder is native code (whisper.cpp), which can abort or crash the process it runs
//! in. A batch therefore decodes in [`process::WorkerProcess`]es: the same binary started as
//! `callqa worker`, holding an [`AsrWorker`] (a [`Transcriber`] that decodes each window on a
//! fresh whisper state) and talking over pipes. Tests and benchmarks may use an [`AsrWorker`]
//! in process.

pub mod filter;
mod loops;
pub mod process;
pub mod windows;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::debug;
use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters,
    WhisperState,
};

use crate::metrics::rate::{self, RateUnit};
use crate::record::{Speaker, SpeechInterval, TimedToken, Utterance};
use crate::textnorm::to_simplified;
use filter::{DropCounts, FilterSettings};

/// `[asr]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrSettings {
    /// Spoken language: "auto" (detect once per channel, see `language_per_window`) or a
    /// Whisper code such as "zh" or "en". Default "auto".
    pub language: String,
    /// The languages the centre speaks: detection picks the most probable of these
    /// (Whisper's language probabilities restricted to the list), so noise on a channel is
    /// never "nn" (Nynorsk). Empty = any of Whisper's languages. Default ["zh", "en"].
    pub languages: Vec<String>,
    /// With "auto": detect on every window instead of once per channel (on its first
    /// window, up to `max_window_s` of its speech). Detection runs the encoder over a full
    /// 30 s context: per window it cost 17% more time than per channel on Mandarin calls
    /// (README, Throughput). For centres whose callers switch language mid-call. Default false.
    pub language_per_window: bool,
    /// A prompt per language code, given to Whisper before each window in that language
    /// (`[asr.initial_prompt]`, e.g. `zh = "..."`). Measured as a recall lever in
    /// `scripts/bench-phrases.sh` (README, Phrase rules). Default none.
    pub initial_prompt: std::collections::BTreeMap<String, String>,
    /// Beam width; 1 is greedy decoding. Default 5.
    pub beam_size: u32,
    /// Re-decode at higher temperature when a window decodes badly (repetition, low
    /// log-probability). Turning it off makes base loop on noisy audio. Default true.
    pub temperature_fallback: bool,
    /// End a decoding pass as soon as its last 32 tokens repeat (whisper.cpp's own entropy
    /// test, applied after every token instead of at the 220-token limit) or it ends in a
    /// cycle of 12 to 64 tokens three times over (see [`loops`]). Default true.
    pub stop_loops: bool,
    /// Most threads per whisper call; 0 = the machine's cores divided by `--jobs`. Default 0.
    pub threads: u32,
    /// Give a call fewer threads when other processes hold cores (README, Durable runs):
    /// ggml's threads spin at a barrier, and a descheduled one stalls the rest. Off = always
    /// `threads`, for dedicated machines or reproducible output (the thread count changes
    /// floating-point sums, hence sometimes the words). Default true.
    pub adapt_threads: bool,
    /// Longest stretch of audio (seconds) sent to Whisper at once. Default 28.
    pub max_window_s: f64,
    /// Audio kept around each speech interval (seconds). Default 0.2.
    pub window_pad_s: f64,
    /// Silence placed between speech intervals packed into one window (seconds); long enough
    /// that Whisper ends a segment there. Default 1.0.
    pub window_gap_s: f64,
    /// Shrink the encoder's context to the window's length instead of a full 30 s (whisper.cpp
    /// `audio_ctx`, plus 2 s, rounded up to 16 frames): measured 1.8x faster end to end at
    /// about the same CER/WER on the benchmark calls (README, Throughput). Default true.
    pub fit_audio_ctx: bool,
    /// Decode again, on their own, the packed pieces of a window that Whisper returned no
    /// text for, or almost none (under 0.3 words, or Han characters, per second of speech),
    /// when they hold at least this much detected speech (seconds); the fuller of the two
    /// readings is kept. 0 turns the second pass off. Default 1.0.
    pub retry_min_speech_s: f64,
    /// Use flash attention in whisper.cpp's encoder and cross-attention (turns off
    /// `dtw_timestamps`). The decoder's self-attention always uses it (callqa's patched
    /// whisper.cpp: it skips the cache cells other beams own). Default false.
    pub flash_attention: bool,
    /// Decode on the GPU where callqa was built with one (`scripts/build-cuda.sh`); false
    /// keeps such a build on the CPU. Each `--jobs` worker holds its own copy of the model on
    /// the first visible GPU (`CUDA_VISIBLE_DEVICES` picks it). No effect on a CPU build.
    /// Default true.
    pub use_gpu: bool,
    /// Word timing by dynamic time warping over the model's alignment heads: far more
    /// precise than whisper.cpp's heuristic token times, which drift by up to a second.
    /// Default true.
    pub dtw_timestamps: bool,
    /// A call's transcription may take this many times its duration before its worker is
    /// stopped and the call fails (stage `transcribe`, `time_budget_exceeded`): a guard
    /// against a decoder that loops. Default 10 (the measured rate is about 0.1x).
    pub time_budget_x_audio: f64,
    /// ... and at least this many seconds (model load and short calls). Default 120.
    pub min_time_budget_s: f64,
    pub filter: FilterSettings,
}

impl Default for AsrSettings {
    fn default() -> Self {
        AsrSettings {
            language: "auto".into(),
            languages: vec!["zh".into(), "en".into()],
            language_per_window: false,
            initial_prompt: Default::default(),
            beam_size: 5,
            temperature_fallback: true,
            stop_loops: true,
            threads: 0,
            adapt_threads: true,
            max_window_s: 28.0,
            window_pad_s: 0.2,
            window_gap_s: 1.0,
            fit_audio_ctx: true,
            retry_min_speech_s: 1.0,
            flash_attention: false,
            use_gpu: true,
            dtw_timestamps: true,
            time_budget_x_audio: 10.0,
            min_time_budget_s: 120.0,
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
    /// The worker process died (abort, segfault, out-of-memory kill) while decoding.
    #[error("the transcription worker died: {reason}")]
    WorkerDied { reason: String },
    #[error("transcription took longer than its time budget of {budget_s:.0} s (asr.time_budget_x_audio, asr.min_time_budget_s)")]
    TimeBudget { budget_s: f64 },
    /// The worker process could not be started or spoke nonsense.
    #[error("transcription worker: {0}")]
    Worker(String),
}

/// A loaded model, shared by all in-process workers.
pub struct Transcriber {
    context: WhisperContext,
    /// The same weights without DTW timing, loaded on first use: the fallback for a window
    /// whose DTW pass crashed (see [`process`]).
    plain: std::sync::OnceLock<Result<WhisperContext, String>>,
    path: PathBuf,
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

/// How one window is decoded, besides the audio and the run's [`AsrSettings`]. It crosses
/// the pipe to the worker process, so it is plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeParams {
    /// The call the window belongs to (logs, and the test builds' fault injection).
    pub call_id: String,
    pub threads: u32,
    /// Encoder frames (`fit_audio_ctx`); `None` = whisper.cpp's full 1500.
    pub audio_ctx: Option<i32>,
    /// DTW token timing, when the model was loaded with it; false = whisper.cpp's own token
    /// times for this window.
    pub dtw: bool,
    /// The language already detected on this channel; `None` = detect on this window (when
    /// `asr.language` is "auto").
    pub language: Option<String>,
}

/// One text token of a decoded window: its bytes (a Chinese character can span tokens) and
/// whisper.cpp's times in centiseconds of window time (`t_dtw` is -1 without DTW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawToken {
    pub bytes: Vec<u8>,
    pub t0: i64,
    pub t1: i64,
    pub t_dtw: i64,
    pub plog: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawSegment {
    pub t0: i64,
    pub t1: i64,
    pub no_speech_prob: f32,
    pub tokens: Vec<RawToken>,
}

/// What Whisper returned for one window, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawWindow {
    pub language: String,
    pub segments: Vec<RawSegment>,
}

/// Anything that turns one window of 16 kHz audio into Whisper's output: a whisper state in
/// this process ([`AsrWorker`]) or a supervised worker process ([`process::WorkerProcess`]).
pub trait WindowDecoder {
    fn decode(&mut self, params: &DecodeParams, audio: &[f32]) -> Result<RawWindow, AsrError>;
}

const SAMPLE_RATE: f64 = 16_000.0;
/// whisper.cpp refuses input shorter than one second; shorter windows are padded with silence.
const MIN_WINDOW_SAMPLES: usize = 16_000 + 1_600;

fn context_params(
    settings: &AsrSettings,
    hparams: &crate::model::ggml::HyperParams,
    dtw: bool,
) -> WhisperContextParameters<'static> {
    let mut params = WhisperContextParameters::default();
    params.flash_attn(settings.flash_attention);
    params.use_gpu(settings.use_gpu);
    if dtw {
        params.dtw_parameters(DtwParameters { mode: dtw_mode(hparams), ..Default::default() });
    }
    params
}

/// The GPU whisper.cpp puts a model on when `asr.use_gpu` is set ("NVIDIA H100 80GB HBM3"):
/// its first GPU device, as `whisper_backend_init_gpu` chooses. `None` where it decodes on
/// the CPU (a build without a GPU backend, `use_gpu = false`, or no device found). Asked in
/// the worker process: finding the device initialises the GPU driver, native code that the
/// supervisor keeps out of its own process.
pub fn gpu_device(settings: &AsrSettings) -> Option<String> {
    use whisper_rs::whisper_rs_sys as sys;
    if !settings.use_gpu {
        return None;
    }
    // SAFETY: ggml's device registry is built once on first use; these calls only read it.
    unsafe {
        (0..sys::ggml_backend_dev_count()).map(|i| sys::ggml_backend_dev_get(i)).find_map(|device| {
            let kind = sys::ggml_backend_dev_type(device);
            let is_gpu = kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU
                || kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU;
            let description = sys::ggml_backend_dev_description(device);
            (is_gpu && !description.is_null())
                .then(|| std::ffi::CStr::from_ptr(description).to_string_lossy().into_owned())
        })
    }
}

impl Transcriber {
    pub fn load(path: &Path, settings: AsrSettings) -> Result<Transcriber, AsrError> {
        let known = |code: &str| whisper_rs::get_lang_id(code).is_some();
        if settings.language != "auto" && !known(&settings.language) {
            return Err(AsrError::Language(settings.language.clone()));
        }
        if let Some(unknown) = settings.languages.iter().find(|code| !known(code)) {
            return Err(AsrError::Language(unknown.clone()));
        }
        whisper_rs::install_logging_hooks();
        let load_error = |reason: String| AsrError::Load { path: path.to_path_buf(), reason };
        let hparams = read_hparams(path).map_err(load_error)?;
        let context = WhisperContext::new_with_params(path, context_params(&settings, &hparams, settings.uses_dtw()))
            .map_err(|e| load_error(e.to_string()))?;
        Ok(Transcriber {
            context,
            plain: Default::default(),
            path: path.to_path_buf(),
            settings,
            model_name: model_name(path),
        })
    }

    pub fn settings(&self) -> &AsrSettings {
        &self.settings
    }

    fn plain_context(&self) -> Result<&WhisperContext, AsrError> {
        self.plain
            .get_or_init(|| {
                let hparams = read_hparams(&self.path)?;
                WhisperContext::new_with_params(&self.path, context_params(&self.settings, &hparams, false))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|reason| AsrError::Load { path: self.path.clone(), reason: reason.clone() })
    }

    pub fn worker(&self, threads: u32) -> Result<AsrWorker<'_>, AsrError> {
        // Fails here, at start-up, rather than on the first window when no state fits in memory.
        self.new_state(&self.context)?;
        Ok(AsrWorker { transcriber: self, threads: threads.max(1) })
    }

    fn new_state(&self, context: &WhisperContext) -> Result<WhisperState, AsrError> {
        context.create_state().map_err(|e| AsrError::Load {
            path: self.path.clone(),
            reason: format!("cannot create a whisper state: {e}"),
        })
    }
}

/// A model's name in the tables (`calls.model`, `runs.model`): its file stem.
pub fn model_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| "whisper".into(), |s| s.to_string_lossy().into_owned())
}

fn read_hparams(path: &Path) -> Result<crate::model::ggml::HyperParams, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    crate::model::ggml::read_hparams(std::io::BufReader::new(file)).map_err(|e| e.to_string())
}

impl AsrSettings {
    /// Whether DTW token timing is on (flash attention rules it out in whisper.cpp).
    pub fn uses_dtw(&self) -> bool {
        self.dtw_timestamps && !self.flash_attention
    }
}

/// Decodes one window at a time in this process, each on a fresh whisper state.
pub struct AsrWorker<'t> {
    transcriber: &'t Transcriber,
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

/// Encoder frames for a window of `samples` (1500 frames span 30 s) plus a margin of 2 s,
/// rounded up to a multiple of 16. On the benchmark calls a 4 s margin cost about 15% more
/// time at the same CER/WER; with less than 2 s Whisper ends early more often (the second
/// pass catches what it drops). The rounding is for ggml: its tiled f16 kernels
/// (llamafile's tinyBLAS) need the inner dimension in multiples of 16 with AVX-512 (8 with
/// AVX2), and the encoder's attention-times-values product has the context as that
/// dimension. Unrounded, it fell back to one dot product per row: a quarter of greedy
/// CPU time (README, Throughput).
fn fitted_audio_ctx(samples: usize) -> i32 {
    const MARGIN_FRAMES: u32 = 100;
    let frames = (samples as f64 / SAMPLE_RATE / 30.0 * 1500.0).ceil() as u32;
    (frames + MARGIN_FRAMES).next_multiple_of(16).min(1500) as i32
}

/// Pieces of a decoded window with at least `min_speech_s` of detected speech but almost no
/// text from it: none, or fewer than `MIN_UNITS_PER_SPEECH_S` units (words; Han characters in
/// Chinese) per second of speech. Whisper sometimes ends its transcript early (after a quiet or
/// far-field stretch) or passes over a piece, at times leaving a stray word there (seen: one
/// "moment." for 10.4 s of English speech at beam 5); decoded again without their neighbours,
/// such pieces are usually transcribed.
fn skipped_pieces(
    window: &windows::Window,
    found: &[Utterance],
    min_speech_s: f64,
    unit: RateUnit,
) -> Vec<windows::Piece> {
    /// A tenth of slow speech: only a transcript that lost most of a piece falls under it.
    const MIN_UNITS_PER_SPEECH_S: f64 = 0.3;
    window
        .pieces
        .iter()
        .filter(|p| {
            let speech_s = p.speech_end_s - p.speech_start_s;
            speech_s >= min_speech_s
                && (units_in(found.iter().filter(|u| p.overlaps(u.start_s, u.end_s)), unit) as f64)
                    < speech_s * MIN_UNITS_PER_SPEECH_S
        })
        .copied()
        .collect()
}

/// Units of speech (as `skipped_pieces` counts them) in utterances.
fn units_in<'a>(utterances: impl IntoIterator<Item = &'a Utterance>, unit: RateUnit) -> usize {
    utterances.into_iter().map(|u| rate::units(&u.text, unit)).sum()
}

/// Decoding parameters for one window.
fn full_params<'a>(s: &'a AsrSettings, threads: u32, language: &'a str) -> FullParams<'a, 'a> {
    let strategy = if s.beam_size > 1 {
        SamplingStrategy::BeamSearch { beam_size: s.beam_size as i32, patience: -1.0 }
    } else {
        SamplingStrategy::Greedy { best_of: 1 }
    };
    let mut p = FullParams::new(strategy);
    p.set_n_threads(threads as i32);
    p.set_language(Some(language));
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
    if s.stop_loops {
        // SAFETY: `end_loops` reads only the tokens and logits whisper.cpp passes it.
        unsafe { p.set_filter_logits_callback(Some(loops::end_loops)) };
    }
    p
}

impl WindowDecoder for AsrWorker<'_> {
    fn decode(&mut self, params: &DecodeParams, audio: &[f32]) -> Result<RawWindow, AsrError> {
        let transcriber = self.transcriber;
        let settings = &transcriber.settings;
        // A fresh state for every window: whisper.cpp's state keeps the random numbers of
        // temperature fallback (and the last encoder context, which detection reuses) from
        // one `full` to the next, so a window decoded on a used state reads differently
        // depending on what that worker decoded before. Creating one costs a few
        // milliseconds against a window's hundreds.
        let context =
            if params.dtw || !settings.uses_dtw() { &transcriber.context } else { transcriber.plain_context()? };
        let state = &mut transcriber.new_state(context)?;
        let threads = params.threads.max(1);
        let language = match (params.language.as_deref(), settings.language.as_str()) {
            (Some(detected), _) => detected.to_string(),
            (None, "auto") if !settings.languages.is_empty() => {
                detect_among(state, &settings.languages, audio, threads)?
            }
            (None, configured) => configured.to_string(),
        };
        let mut full = full_params(settings, threads, &language);
        if let Some(prompt) = settings.initial_prompt.get(&language) {
            full.set_initial_prompt(prompt);
        }
        if let Some(ctx) = params.audio_ctx {
            full.set_audio_ctx(ctx);
        }
        #[cfg(feature = "test-hooks")]
        if process::fault::SHORT_SEGMENT.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: the filter reads only what whisper.cpp passes it.
            unsafe { full.set_filter_logits_callback(Some(process::fault::short_segment)) };
        }
        state.full(full, audio).map_err(|e| AsrError::Worker(format!("whisper_full failed: {e}")))?;
        Ok(raw_window(state, transcriber.context.token_eot()))
    }
}

/// The most probable of `allowed` languages for a window. Costs what whisper.cpp's own
/// detection does (one encoder pass and one decoder step); `full` then skips its detection.
fn detect_among(state: &mut WhisperState, allowed: &[String], audio: &[f32], threads: u32) -> Result<String, AsrError> {
    let failed = |e: whisper_rs::WhisperError| AsrError::Worker(format!("language detection failed: {e}"));
    state.pcm_to_mel(audio, threads as usize).map_err(failed)?;
    let (_, probabilities) = state.lang_detect(0, threads as usize).map_err(failed)?;
    Ok(most_probable(allowed, &probabilities))
}

/// The code in `allowed` with the highest probability (Whisper's language ids index
/// `probabilities`); the first code when none is known.
fn most_probable(allowed: &[String], probabilities: &[f32]) -> String {
    let probability =
        |code: &String| whisper_rs::get_lang_id(code).and_then(|id| probabilities.get(id as usize).copied());
    allowed
        .iter()
        .max_by(|a, b| probability(a).unwrap_or(-1.0).total_cmp(&probability(b).unwrap_or(-1.0)))
        .cloned()
        .unwrap_or_default()
}

/// A state's segments after `full`, as plain data (text tokens only).
fn raw_window(state: &WhisperState, eot: i32) -> RawWindow {
    let language = whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("unknown").to_string();
    let segments = state
        .as_iter()
        .map(|segment| RawSegment {
            t0: segment.start_timestamp(),
            t1: segment.end_timestamp(),
            no_speech_prob: segment.no_speech_probability(),
            tokens: (0..segment.n_tokens())
                .filter_map(|i| segment.get_token(i))
                .filter_map(|token| {
                    let data = token.token_data();
                    let bytes = token.to_bytes().ok()?;
                    (data.id < eot).then(|| RawToken {
                        bytes: bytes.to_vec(),
                        t0: data.t0,
                        t1: data.t1,
                        t_dtw: data.t_dtw,
                        plog: data.plog,
                    })
                })
                .collect(),
        })
        .collect();
    RawWindow { language, segments }
}

impl AsrWorker<'_> {
    /// Transcribe the speech of one channel in this process.
    pub fn transcribe(
        &mut self,
        speaker: Speaker,
        samples_16k: &[f32],
        speech: &[SpeechInterval],
    ) -> Result<ChannelTranscript, AsrError> {
        let settings = self.transcriber.settings.clone();
        let threads = self.threads;
        transcribe_channel(self, &settings, "", &|| threads, speaker, samples_16k, speech)
    }
}

/// Transcribe the speech of one channel: plan windows over its speech, decode each with
/// `decoder`, decode again on their own the pieces Whisper passed over, map tokens back to
/// call time and filter Whisper's known failure modes. `threads` is asked before every
/// window, so a call adapts when another process starts or stops using the cores.
pub fn transcribe_channel(
    decoder: &mut dyn WindowDecoder,
    s: &AsrSettings,
    call_id: &str,
    threads: &dyn Fn() -> u32,
    speaker: Speaker,
    samples_16k: &[f32],
    speech: &[SpeechInterval],
) -> Result<ChannelTranscript, AsrError> {
    let length_s = samples_16k.len() as f64 / SAMPLE_RATE;
    let mut out = ChannelTranscript::default();
    let mut utterances = Vec::new();
    let mut channel_language: Option<String> = None;
    // A window to decode, and for a second-pass window what the first pass found in its
    // pieces: kept instead when the second pass finds less.
    let mut queue: VecDeque<(windows::Window, Option<Vec<Utterance>>)> =
        windows::plan_windows(speech, s.window_pad_s, s.window_gap_s, s.max_window_s, length_s)
            .into_iter()
            .map(|w| (w, None))
            .collect();
    while let Some((window, first_pass)) = queue.pop_front() {
        let is_retry = first_pass.is_some();
        let mut audio = window.gather(samples_16k);
        if audio.len() < MIN_WINDOW_SAMPLES {
            audio.resize(MIN_WINDOW_SAMPLES, 0.0);
        }
        let at_s = window.pieces[0].call_start_s;
        let params = DecodeParams {
            call_id: call_id.to_string(),
            threads: threads().max(1),
            audio_ctx: s.fit_audio_ctx.then(|| fitted_audio_ctx(audio.len())),
            dtw: s.uses_dtw(),
            language: channel_language.clone(),
        };
        let started = std::time::Instant::now();
        let raw = decoder.decode(&params, &audio).map_err(|e| match e {
            AsrError::Worker(reason) => AsrError::Decode { speaker, at_s, reason },
            other => other,
        })?;
        debug!(
            ?speaker,
            at_s,
            window_s = window.len_s,
            is_retry,
            tokens = raw.segments.iter().map(|s| s.tokens.len()).sum::<usize>(),
            decode_s = started.elapsed().as_secs_f64(),
            "decoded a window"
        );
        if s.language == "auto" && !s.language_per_window && whisper_rs::get_lang_id(&raw.language).is_some() {
            channel_language.get_or_insert_with(|| raw.language.clone());
        }
        let is_chinese = raw.language == "zh";
        let unit = RateUnit::for_language(&raw.language);
        let mut found = collect_utterances(&raw, speaker, &window, is_chinese);
        out.languages.push((raw.language, window.len_s));
        match first_pass {
            Some(first) if units_in(&first, unit) > units_in(&found, unit) => found = first,
            Some(_) => {}
            None if s.retry_min_speech_s > 0.0 => {
                let skipped = skipped_pieces(&window, &found, s.retry_min_speech_s, unit);
                if !skipped.is_empty() {
                    debug!(
                        ?speaker,
                        at_s,
                        pieces = skipped.len(),
                        "Whisper skipped speech; decoding it again on its own"
                    );
                    let retries = windows::pack(skipped, s.window_gap_s, s.max_window_s);
                    for retry in retries.into_iter().rev() {
                        let (first, rest) =
                            found.into_iter().partition(|u: &Utterance| retry.overlaps(u.start_s, u.end_s));
                        found = rest;
                        queue.push_front((retry, Some(first)));
                    }
                }
            }
            None => {}
        }
        utterances.extend(found);
    }
    let (kept, dropped) = filter::filter(utterances, speech, &s.filter);
    out.utterances = kept;
    out.dropped = dropped;
    Ok(out)
}

/// Read a decoded window's segments as utterances in call time: a segment's tokens are split
/// by the speech piece they fall in, and an utterance that is alone in its piece takes the
/// piece's detected speech bounds (more precise than Whisper's timestamps).
fn collect_utterances(raw: &RawWindow, speaker: Speaker, window: &windows::Window, is_chinese: bool) -> Vec<Utterance> {
    struct Group {
        segment: usize,
        piece: usize,
        tokens: Vec<TimedToken>,
        logprobs: Vec<f32>,
        no_speech_prob: f32,
    }
    let script = |text: &str| if is_chinese { to_simplified(text) } else { text.to_string() };
    let mut groups: Vec<Group> = Vec::new();
    for (segment_index, segment) in raw.segments.iter().enumerate() {
        let (seg_t0, seg_t1) = (segment.t0 as f64 / 100.0, segment.t1 as f64 / 100.0);
        let (mut pending, mut pending_t0, mut pending_logprob) = (Vec::<u8>::new(), None, 0.0f32);
        for token in &segment.tokens {
            pending.extend_from_slice(&token.bytes);
            pending_logprob += token.plog;
            // t_dtw is the token's onset by alignment (-1 when DTW is off).
            let onset = if token.t_dtw >= 0 { token.t_dtw } else { token.t0 };
            let t0 = *pending_t0.get_or_insert((onset as f64 / 100.0).clamp(seg_t0, seg_t1.max(seg_t0)));
            // A Chinese character can span tokens: emit once the bytes are whole UTF-8.
            let Ok(text) = std::str::from_utf8(&pending) else {
                continue;
            };
            let t1 = (token.t1 as f64 / 100.0).clamp(t0, seg_t1.max(t0));
            let piece = window.piece_at(if token.t_dtw >= 0 { t0 } else { (t0 + t1) / 2.0 });
            let timed =
                TimedToken { text: script(text), start_s: window.to_call_time(t0), end_s: window.to_call_time(t1) };
            match groups.last_mut() {
                Some(g) if g.segment == segment_index && g.piece == piece => {
                    g.tokens.push(timed);
                    g.logprobs.push(pending_logprob);
                }
                _ => groups.push(Group {
                    segment: segment_index,
                    piece,
                    tokens: vec![timed],
                    logprobs: vec![pending_logprob],
                    no_speech_prob: segment.no_speech_prob,
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
            // A token's end in window time can fall past its piece (the window joins pieces
            // without their gaps): it would map into the next piece, seconds later.
            let tokens = g
                .tokens
                .iter()
                .map(|t| {
                    let start = t.start_s.clamp(start_s, end_s);
                    TimedToken { text: t.text.clone(), start_s: start, end_s: t.end_s.clamp(start, end_s) }
                })
                .collect();
            Some(Utterance {
                speaker,
                start_s,
                end_s,
                text,
                avg_logprob: g.logprobs.iter().sum::<f32>() / g.logprobs.len() as f32,
                no_speech_prob: g.no_speech_prob,
                tokens,
            })
        })
        .collect()
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
        let skipped = skipped_pieces(&w, &[utterance(1.0, 3.0)], 1.0, RateUnit::Cpm);
        let starts: Vec<f64> = skipped.iter().map(|p| p.speech_start_s).collect();
        assert_eq!(starts, vec![12.0, 25.0]);
        // Every piece with enough speech has text: nothing to retry.
        let mut all = vec![utterance(1.0, 3.0), utterance(12.5, 19.0), utterance(25.0, 26.0)];
        all[1].text = "好的我帮您查一下".into();
        assert!(skipped_pieces(&w, &all, 1.0, RateUnit::Cpm).is_empty());
        // Two characters for 8 s of speech: Whisper lost most of that piece.
        all[1].text = "好的".into();
        let skipped = skipped_pieces(&w, &all, 1.0, RateUnit::Cpm);
        assert_eq!(skipped.iter().map(|p| p.speech_start_s).collect::<Vec<_>>(), vec![12.0]);
    }

    /// Answers each window with the next scripted one: words spread evenly over (t0, t1)
    /// seconds of window time.
    struct Scripted(VecDeque<Vec<(&'static str, f64, f64)>>);

    impl WindowDecoder for Scripted {
        fn decode(&mut self, _params: &DecodeParams, _audio: &[f32]) -> Result<RawWindow, AsrError> {
            let script = self.0.pop_front().expect("a window more than scripted");
            let segments = script
                .into_iter()
                .map(|(text, t0, t1)| {
                    let words: Vec<&str> = text.split(' ').collect();
                    let step = (t1 - t0) / words.len() as f64;
                    let cs = |s: f64| (s * 100.0).round() as i64;
                    let tokens = (0..words.len())
                        .map(|k| {
                            let (a, b) = (t0 + step * k as f64, t0 + step * (k + 1) as f64);
                            let bytes = format!(" {}", words[k]).into_bytes();
                            RawToken { bytes, t0: cs(a), t1: cs(b), t_dtw: -1, plog: -0.05 }
                        })
                        .collect();
                    RawSegment { t0: cs(t0), t1: cs(t1), no_speech_prob: 0.01, tokens }
                })
                .collect();
            Ok(RawWindow { language: "en".into(), segments })
        }
    }

    /// Two pieces packed into one window (0.8-3.2 s and 11.8-22.2 s of the call; 0-2.4 s and
    /// 3.4-13.8 s of the window); the first pass leaves one stray word in the second.
    fn second_pass(retry: Vec<(&'static str, f64, f64)>) -> Vec<String> {
        let speech = [(1.0, 3.0), (12.0, 22.0)].map(|(a, b)| SpeechInterval { start_s: a, end_s: b });
        let first = vec![("I have that curiosity beside me at this", 0.2, 2.2), ("moment.", 3.6, 4.0)];
        let mut decoder = Scripted(VecDeque::from([first, retry]));
        let samples = vec![0.0f32; 24 * 16_000];
        let settings = AsrSettings { language: "en".into(), ..Default::default() };
        let out = transcribe_channel(&mut decoder, &settings, "c", &|| 1, Speaker::Agent, &samples, &speech).unwrap();
        assert!(decoder.0.is_empty(), "the second piece was decoded again");
        out.utterances.iter().map(|u| u.text.clone()).collect()
    }

    #[test]
    fn a_piece_left_with_a_stray_word_is_decoded_again_and_the_fuller_text_kept() {
        let retry = vec![("So what is interesting here is I feel that you know brands knowing this", 0.3, 9.8)];
        assert_eq!(
            second_pass(retry),
            [
                "I have that curiosity beside me at this",
                "So what is interesting here is I feel that you know brands knowing this"
            ]
        );
        // A second pass that finds less keeps what the first found.
        assert_eq!(second_pass(vec![]), ["I have that curiosity beside me at this", "moment."]);
    }

    #[test]
    fn detection_keeps_to_the_centres_languages() {
        let mut probabilities = vec![0.0f32; whisper_rs::get_lang_max_id() as usize + 1];
        let id = |code: &str| whisper_rs::get_lang_id(code).unwrap() as usize;
        probabilities[id("nn")] = 0.6;
        probabilities[id("en")] = 0.15;
        probabilities[id("zh")] = 0.25;
        let allowed = ["zh".to_string(), "en".to_string()];
        assert_eq!(most_probable(&allowed, &probabilities), "zh");
        probabilities[id("en")] = 0.3;
        assert_eq!(most_probable(&allowed, &probabilities), "en");
    }

    /// Records the language each window was sent with, and answers "en" with no text.
    struct Recorder(Vec<Option<String>>);

    impl WindowDecoder for Recorder {
        fn decode(&mut self, params: &DecodeParams, _audio: &[f32]) -> Result<RawWindow, AsrError> {
            self.0.push(params.language.clone());
            Ok(RawWindow { language: "en".into(), segments: Vec::new() })
        }
    }

    fn languages_sent(settings: &AsrSettings) -> Vec<Option<String>> {
        // Three stretches of 20 s of speech: three windows of at most 28 s.
        let speech = [(1.0, 21.0), (25.0, 45.0), (50.0, 70.0)].map(|(a, b)| SpeechInterval { start_s: a, end_s: b });
        let samples = vec![0.0f32; 72 * 16_000];
        let mut recorder = Recorder(Vec::new());
        let settings = AsrSettings { retry_min_speech_s: 0.0, ..settings.clone() };
        transcribe_channel(&mut recorder, &settings, "c", &|| 1, Speaker::Agent, &samples, &speech).unwrap();
        recorder.0
    }

    #[test]
    fn the_language_is_detected_once_per_channel_unless_asked_per_window() {
        let en = Some("en".to_string());
        assert_eq!(languages_sent(&AsrSettings::default()), vec![None, en.clone(), en]);
        let per_window = AsrSettings { language_per_window: true, ..Default::default() };
        assert_eq!(languages_sent(&per_window), vec![None, None, None]);
        let configured = AsrSettings { language: "zh".into(), ..Default::default() };
        assert_eq!(languages_sent(&configured), vec![None, None, None]);
    }

    #[test]
    fn encoder_context_fits_the_window_with_a_margin_in_multiples_of_16() {
        assert_eq!(fitted_audio_ctx(16_000 * 10), 608);
        assert_eq!(fitted_audio_ctx(16_000 * 10 + 1), 608);
        assert_eq!(fitted_audio_ctx(16_000 * 27), 1456);
        // Past 1488 the rounding would overrun Whisper's 30 s: the full context, unrounded.
        assert_eq!(fitted_audio_ctx(16_000 * 28), 1500);
        assert_eq!(fitted_audio_ctx(16_000 * 29), 1500);
    }
}
