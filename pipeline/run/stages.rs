//! One call through the stages, as plain functions over the records of [`crate::record`]:
//! [`read`] (bytes and their hash) -> [`voice`] (decode, resample, speech activity, loudness) ->
//! [`transcribe`] -> [`score`] (metrics, phrase rules, scorecard) -> [`redact`] (personal
//! data out of the words; the muted copy of the recording). The scheduler in [`super`] runs
//! the first two on the CPU pool and the rest beside the ASR workers.

use std::io::Read;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::asr::{self, AsrError, AsrSettings, WindowDecoder};
use crate::audio::decode::DecodeError;
use crate::config::Config;
use crate::record::{
    AudioFacts, CallFailure, CallSource, ErrorType, Event, EventKind, ScoredCall, Scores, Speaker, SpeechInterval,
    StageTimes, TranscribedCall, VoicedCall,
};
use crate::{audio, metrics, rules, vad};

fn failure(
    source: &CallSource,
    sha: Option<&str>,
    stage: crate::record::Stage,
    error_type: ErrorType,
    reason: String,
) -> CallFailure {
    CallFailure {
        call_id: source.call_id.clone(),
        path: source.path.clone(),
        content_sha256: sha.map(str::to_string),
        stage,
        error_type,
        reason,
    }
}

/// The largest file that could be a recording within `decode.max_duration_s`: the highest
/// rate decode takes, two channels, 32-bit samples, plus headers.
pub fn max_file_bytes(config: &Config) -> u64 {
    (config.decode.max_duration_s * audio::decode::MAX_RATE_HZ as f64 * 2.0 * 4.0) as u64 + (1 << 20)
}

/// Read a call's bytes (a regular file, at most `max_bytes`) and hash them.
pub fn read(source: &CallSource, max_bytes: u64) -> Result<(Vec<u8>, String), CallFailure> {
    use crate::record::Stage::Read as Stage;
    let io_failure = |e: std::io::Error| failure(source, None, Stage, ErrorType::of_io(&e), e.to_string());
    let too_large = |len: u64| {
        failure(
            source,
            None,
            Stage,
            ErrorType::TooLarge,
            format!("{len} bytes is larger than any recording within decode.max_duration_s"),
        )
    };
    let url = source.path.to_string_lossy();
    if crate::storage::is_url(&url) {
        if let Some(len) = source.size_bytes.filter(|&len| len > max_bytes) {
            return Err(too_large(len));
        }
        let (store, key) =
            crate::storage::object(&url).map_err(|e| failure(source, None, Stage, ErrorType::IoError, e.reason))?;
        let bytes = store.read(&key).map_err(io_failure)?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        let sha = hex(&Sha256::digest(&bytes));
        return Ok((bytes.to_vec(), sha));
    }
    let file = std::fs::File::open(&source.path).map_err(io_failure)?;
    let metadata = file.metadata().map_err(io_failure)?;
    if !metadata.is_file() {
        return Err(failure(source, None, Stage, ErrorType::NotRegularFile, "not a regular file".into()));
    }
    if metadata.len() > max_bytes {
        return Err(too_large(metadata.len()));
    }
    // Bounded even if the file grows while we read it.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(io_failure)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    let sha = hex(&Sha256::digest(&bytes));
    Ok((bytes, sha))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_error_type(e: &DecodeError) -> ErrorType {
    match e {
        DecodeError::Empty | DecodeError::NoSamples => ErrorType::Empty,
        DecodeError::NotWav(_) => ErrorType::NotWav,
        DecodeError::Unsupported(_) => ErrorType::UnsupportedFormat,
        DecodeError::Corrupt(_) => ErrorType::Corrupt,
        DecodeError::TooLong { .. } => ErrorType::TooLong,
        DecodeError::NonFinite { .. } => ErrorType::InvalidSamples,
    }
}

/// Decode, resample to 16 kHz and find speech on every channel. `bytes` are dropped here.
pub fn voice(
    source: &CallSource,
    bytes: Vec<u8>,
    content_sha256: String,
    config: &Config,
) -> Result<VoicedCall, CallFailure> {
    use crate::record::Stage;
    let mut timings = StageTimes::default();
    let clock = Instant::now();
    let decoded = audio::decode::decode_wav(&bytes, config.decode.max_duration_s)
        .map_err(|e| failure(source, Some(&content_sha256), Stage::Decode, decode_error_type(&e), e.to_string()))?;
    drop(bytes);
    timings.decode = clock.elapsed().as_secs_f64();
    let facts = AudioFacts {
        duration_s: decoded.duration_s(),
        sample_rate_hz: decoded.sample_rate_hz,
        channels: decoded.channels.len(),
        codec: decoded.codec,
    };
    let clock = Instant::now();
    let agent_channel = source.agent_channel.unwrap_or(config.channels.agent_channel);
    let channels = audio::to_speaker_channels(&decoded, agent_channel)
        .map_err(|e| failure(source, Some(&content_sha256), Stage::Resample, ErrorType::Corrupt, e.to_string()))?;
    drop(decoded);
    timings.resample = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let channel_audio: Vec<&[f32]> = channels.iter().map(|c| c.samples_16k.as_slice()).collect();
    let mut speech: Vec<(Speaker, Vec<SpeechInterval>)> =
        channels.iter().map(|c| c.speaker).zip(vad::detect_call(&channel_audio, &config.vad)).collect();
    // Hold music on the agent channel is not the agent talking; the VAD may take it for speech.
    let mut music = Vec::new();
    if let Some((channel, (_, intervals))) =
        channels.iter().zip(speech.iter_mut()).find(|(c, _)| c.speaker.is_agent_side())
    {
        music = vad::music::music_intervals(&channel.samples_16k, config.hold.music_min_s);
        *intervals = metrics::intervals::subtract(intervals, &music, config.vad.min_speech_s);
    }
    // Loudness needs the audio and the speech intervals, and is counted with speech activity.
    let mut loudness = crate::record::Loudness::default();
    for (channel, (_, intervals)) in channels.iter().zip(&speech) {
        let (level, events) =
            crate::loudness::analyse(&channel.samples_16k, channel.speaker, intervals, &config.loudness);
        loudness.channels.push((channel.speaker, level));
        loudness.events.extend(events);
    }
    timings.vad = clock.elapsed().as_secs_f64();
    Ok(VoicedCall { source: source.clone(), content_sha256, facts, channels, speech, music, loudness, timings })
}

/// What transcription runs with.
pub struct Asr<'a> {
    pub decoder: &'a mut dyn WindowDecoder,
    pub settings: &'a AsrSettings,
    pub model_name: &'a str,
    /// Threads for the next window (asked before each one).
    pub threads: &'a dyn Fn() -> u32,
}

fn asr_error_type(e: &AsrError) -> ErrorType {
    match e {
        AsrError::WorkerDied { .. } => ErrorType::WorkerCrashed,
        AsrError::TimeBudget { .. } => ErrorType::TimeBudgetExceeded,
        _ => ErrorType::WhisperError,
    }
}

/// Transcribe every channel (or nothing, without `asr`); the audio is dropped here.
pub fn transcribe(call: VoicedCall, asr: Option<Asr<'_>>) -> Result<TranscribedCall, CallFailure> {
    let clock = Instant::now();
    let VoicedCall { source, content_sha256, facts, channels, speech, music, loudness, mut timings } = call;
    let mut utterances = Vec::new();
    let mut dropped = asr::filter::DropCounts::default();
    let mut language = None;
    let mut channel_languages = Vec::new();
    let mut model = None;
    if let Some(asr) = asr {
        let mut detections: Vec<(String, f64)> = Vec::new();
        for (channel, (_, intervals)) in channels.iter().zip(&speech) {
            let transcript = asr::transcribe_channel(
                asr.decoder,
                asr.settings,
                &source.call_id,
                asr.threads,
                channel.speaker,
                &channel.samples_16k,
                intervals,
            )
            .map_err(|e| {
                failure(
                    &source,
                    Some(&content_sha256),
                    crate::record::Stage::Transcribe,
                    asr_error_type(&e),
                    e.to_string(),
                )
            })?;
            utterances.extend(transcript.utterances);
            dropped.add(transcript.dropped);
            if let Some(channel_language) = most_heard(&transcript.languages) {
                channel_languages.push((channel.speaker, channel_language));
            }
            detections.extend(transcript.languages);
        }
        utterances.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        language = match asr.settings.language.as_str() {
            "auto" => most_heard(&detections),
            configured => Some(configured.to_string()),
        };
        model = Some(asr.model_name.to_string());
    }
    drop(channels);
    timings.asr = clock.elapsed().as_secs_f64();
    Ok(TranscribedCall {
        source,
        content_sha256,
        facts,
        speech,
        music,
        loudness,
        model,
        language,
        channel_languages,
        utterances,
        dropped,
        timings,
    })
}

/// The language of the most seconds among (language, seconds) detections.
fn most_heard(detections: &[(String, f64)]) -> Option<String> {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for (language, seconds) in detections {
        match totals.iter_mut().find(|(l, _)| l == language) {
            Some((_, total)) => *total += seconds,
            None => totals.push((language, *seconds)),
        }
    }
    totals.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(l, _)| l.to_string())
}

/// What scoring reads of a transcribed call: `run` takes it from the stages, `rescore` from
/// the stored tables.
pub struct ScoringInput<'a> {
    pub speech: &'a [(Speaker, Vec<SpeechInterval>)],
    /// Music and tones on the agent channel (the mix on mono).
    pub music: &'a [SpeechInterval],
    pub utterances: &'a [crate::record::Utterance],
    pub duration_s: f64,
    /// `None` when nothing was transcribed.
    pub language: Option<&'a str>,
    pub channel_languages: &'a [(Speaker, String)],
}

/// Metrics, their events, phrase-rule events and the scorecard. The score is null without
/// transcription, and when the call's language or the agent's has no phrase rules (an event
/// `no_rules_for_language` says so): a call nobody could check must not look perfect.
pub fn assess(input: &ScoringInput, config: &Config) -> (metrics::CallMetrics, Vec<Event>, Option<Scores>) {
    let holds = holds(input, config);
    let (metrics, mut events) =
        metrics::compute(input.speech, input.utterances, input.language, &holds, &config.metric_settings());
    let holder = agent_side(input.speech).map(|(s, _)| *s);
    events.extend(input.music.iter().map(|m| {
        let detail = format!("music or a tone on the agent's line for {:.0} s", m.duration_s());
        Event::metric(EventKind::Music, holder, m.start_s, m.end_s, detail)
    }));
    let Some(language) = input.language else {
        crate::record::sort_events(&mut events);
        return (metrics, events, None);
    };
    let has_rules = |l: &str| config.phrases.iter().any(|r| r.language.as_deref().is_none_or(|rl| rl == l));
    let mut unchecked: Vec<(Option<Speaker>, &str)> = Vec::new();
    if !has_rules(language) {
        unchecked.push((None, language));
    }
    for (speaker, channel_language) in input.channel_languages {
        if channel_language != language && !has_rules(channel_language) {
            unchecked.push((Some(*speaker), channel_language));
        }
    }
    events.extend(unchecked.iter().map(|&(speaker, l)| {
        Event::metric(
            EventKind::NoRulesForLanguage,
            speaker,
            0.0,
            input.duration_s,
            format!(
                "no phrase rules for language {l:?}: qa_score left null (add [[phrases]] with language = {l:?}, \
                 or list the centre's languages in asr.languages)"
            ),
        )
    }));
    let scored = unchecked.iter().all(|(speaker, _)| matches!(speaker, Some(Speaker::Customer)));
    let hold_intervals: Vec<SpeechInterval> = holds.iter().map(metrics::hold::Hold::interval).collect();
    let text = rules::CallText {
        utterances: input.utterances,
        speech: input.speech,
        duration_s: input.duration_s,
        language,
        holds: &hold_intervals,
    };
    let phrase_events = rules::evaluate(&config.phrases, &config.matching, &text);
    let count = |kind: EventKind| phrase_events.iter().filter(|e| e.kind == kind).count() as u32;
    let (forbidden_hits, required_missing) =
        (count(EventKind::ForbiddenPhrase), count(EventKind::RequiredPhraseMissing));
    let deductions = rules::scorecard::metric_deductions(&metrics, &events, &config.scorecard);
    events.extend(phrase_events);
    events.extend(deductions);
    let scores =
        scored.then(|| Scores { forbidden_hits, required_missing, qa_score: rules::scorecard::qa_score(&events) });
    crate::record::sort_events(&mut events);
    (metrics, events, scores)
}

/// The agent's channel, or the mix of a mono recording: where holds and hold music are.
fn agent_side(speech: &[(Speaker, Vec<SpeechInterval>)]) -> Option<&(Speaker, Vec<SpeechInterval>)> {
    speech.iter().find(|(s, _)| s.is_agent_side())
}

/// The call's holds: silences of the agent (the mix on mono) after a hold phrase of the call's
/// language, or with music.
fn holds(input: &ScoringInput, config: &Config) -> Vec<metrics::hold::Hold> {
    let Some((holder, agent_speech)) = agent_side(input.speech) else {
        return Vec::new();
    };
    let patterns = input.language.and_then(|l| config.hold.phrases.get(l)).map_or(&[][..], Vec::as_slice);
    let phrases: Vec<(f64, String)> = rules::phrase_times(input.utterances, *holder, patterns, &config.matching)
        .into_iter()
        .map(|(_, end_s, text)| (end_s, text))
        .collect();
    metrics::hold::holds(agent_speech, &phrases, input.music, input.duration_s, &config.hold)
}

/// Metrics, phrase rules and the scorecard.
pub fn score(mut call: TranscribedCall, config: &Config) -> ScoredCall {
    let clock = Instant::now();
    let input = ScoringInput {
        speech: &call.speech,
        music: &call.music,
        utterances: &call.utterances,
        duration_s: call.facts.duration_s,
        language: call.language.as_deref(),
        channel_languages: &call.channel_languages,
    };
    let (metrics, mut events, scores) = assess(&input, config);
    events.extend(call.loudness.events.iter().cloned());
    crate::record::sort_events(&mut events);
    call.timings.metrics_rules = clock.elapsed().as_secs_f64();
    ScoredCall { call, metrics, events, scores }
}

/// Personal data out of the words, after the phrase rules have read them (unless
/// `privacy.redact` is off), and the muted copy of the recording into `muted_audio_dir`.
pub fn redact(
    mut call: ScoredCall,
    settings: &crate::privacy::PrivacySettings,
    muted_audio_dir: Option<&std::path::Path>,
) -> Result<ScoredCall, CallFailure> {
    if settings.redact {
        crate::privacy::redact_call(&mut call, settings);
    }
    if let Some(dir) = muted_audio_dir {
        crate::sinks::audio::write_muted_copy(dir, &call, settings.audio_pad_s).map_err(|e| {
            let source = &call.call.source;
            failure(
                source,
                Some(&call.call.content_sha256),
                crate::record::Stage::Redact,
                ErrorType::IoError,
                e.to_string(),
            )
        })?;
    }
    Ok(call)
}

/// Every stage on bytes already read, in this thread (tests, benchmarks, tools).
pub fn process_call(
    source: &CallSource,
    bytes: Vec<u8>,
    content_sha256: String,
    config: &Config,
    asr: Option<Asr<'_>>,
) -> Result<ScoredCall, CallFailure> {
    let voiced = voice(source, bytes, content_sha256, config)?;
    redact(score(transcribe(voiced, asr)?, config), &config.privacy, None)
}
