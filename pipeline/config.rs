//! Configuration: one TOML file -> [`Config`], every field with a documented default.
//!
//! Unknown keys are errors that name the key, so a misspelt setting never silently does
//! nothing. `callqa config` prints the effective configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::asr::AsrSettings;
use crate::metrics::hold::HoldSettings;
use crate::metrics::interruption::InterruptionSettings;
use crate::metrics::rate::RateSettings;
use crate::metrics::silence::SilenceSettings;
use crate::metrics::MetricSettings;
use crate::privacy::PrivacySettings;
use crate::rules::scorecard::ScorecardSettings;
use crate::rules::{MatchSettings, PhraseRule};
use crate::vad::VadSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub run: RunSettings,
    pub decode: DecodeSettings,
    pub channels: ChannelSettings,
    pub vad: VadSettings,
    pub asr: AsrSettings,
    pub silence: SilenceSettings,
    pub hold: HoldSettings,
    pub interruption: InterruptionSettings,
    pub rate: RateSettings,
    pub matching: MatchSettings,
    pub scorecard: ScorecardSettings,
    pub privacy: PrivacySettings,
    pub loudness: crate::loudness::LoudnessSettings,
    /// Phrase rules (`[[phrases]]`); the default is the built-in lexicon. A config that lists
    /// any `[[phrases]]` replaces the whole list.
    pub phrases: Vec<PhraseRule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            run: RunSettings::default(),
            decode: DecodeSettings::default(),
            channels: ChannelSettings::default(),
            vad: VadSettings::default(),
            asr: AsrSettings::default(),
            silence: SilenceSettings::default(),
            hold: HoldSettings::default(),
            interruption: InterruptionSettings::default(),
            rate: RateSettings::default(),
            matching: MatchSettings::default(),
            scorecard: ScorecardSettings::default(),
            privacy: PrivacySettings::default(),
            loudness: Default::default(),
            phrases: crate::rules::lexicon::default_rules(),
        }
    }
}

/// `[run]` settings: how a batch commits, retries and uses memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// Commit results after this many finished calls (`--commit-every`). Default 20: at the
    /// measured ~0.1x real time of two-channel calls on 2 cores, about 2-5 minutes of work.
    pub commit_every: usize,
    /// ... or after this many seconds since the last commit, whichever comes first
    /// (`--commit-interval-s`). Default 300: a kill loses at most about 5 minutes of work.
    pub commit_interval_s: f64,
    /// Runs that may try a failing call (same content) before it is left in `failures` with
    /// its reason (`--max-attempts`). Default 2.
    pub max_attempts: u32,
    /// Memory the calls in flight between reading and transcription may hold (MiB, estimated
    /// from file sizes); a call larger than this runs alone. Default 2048.
    pub max_in_flight_mb: usize,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings { commit_every: 20, commit_interval_s: 300.0, max_attempts: 2, max_in_flight_mb: 2048 }
    }
}

/// `[decode]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSettings {
    /// Recordings longer than this (seconds) are refused as implausible. Default 14400 (4 h).
    pub max_duration_s: f64,
}

impl Default for DecodeSettings {
    fn default() -> Self {
        DecodeSettings { max_duration_s: 4.0 * 3600.0 }
    }
}

/// `[channels]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelSettings {
    /// Channel index of the agent in two-channel recordings (the other is the customer).
    /// A manifest's `agent_channel` column overrides it per call. Default 0.
    pub agent_channel: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.into(), message })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        config.validate()?;
        Ok(config)
    }

    /// Every numeric setting against its allowed range; the error names the key and range.
    fn validate(&self) -> Result<(), String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let a = &self.asr;
        let mut checks: Vec<(&str, f64, std::ops::RangeInclusive<f64>)> = vec![
            ("run.commit_every", self.run.commit_every as f64, 1.0..=100_000.0),
            ("run.commit_interval_s", self.run.commit_interval_s, 1.0..=86_400.0),
            ("run.max_attempts", self.run.max_attempts as f64, 1.0..=100.0),
            ("run.max_in_flight_mb", self.run.max_in_flight_mb as f64, 64.0..=1_048_576.0),
            ("decode.max_duration_s", self.decode.max_duration_s, 1.0..=86_400.0),
            ("channels.agent_channel", self.channels.agent_channel as f64, 0.0..=1.0),
            ("vad.threshold", self.vad.threshold as f64, 0.0..=1.0),
            ("vad.hangover_s", self.vad.hangover_s, 0.0..=10.0),
            ("vad.min_speech_s", self.vad.min_speech_s, 0.0..=10.0),
            ("vad.bleed_margin_db", self.vad.bleed_margin_db as f64, 0.0..=60.0),
            ("asr.beam_size", a.beam_size as f64, 1.0..=8.0),
            ("asr.threads", a.threads as f64, 0.0..=cores),
            ("asr.max_window_s", a.max_window_s, 1.0..=30.0),
            ("asr.window_pad_s", a.window_pad_s, 0.0..=2.0),
            ("asr.window_gap_s", a.window_gap_s, 0.0..=5.0),
            ("asr.retry_min_speech_s", a.retry_min_speech_s, 0.0..=30.0),
            ("asr.time_budget_x_audio", a.time_budget_x_audio, 0.1..=1000.0),
            ("asr.min_time_budget_s", a.min_time_budget_s, 1.0..=86_400.0),
            ("asr.filter.no_speech_prob", a.filter.no_speech_prob as f64, 0.0..=1.0),
            ("asr.filter.avg_logprob", a.filter.avg_logprob as f64, -100.0..=0.0),
            ("asr.filter.min_speech_coverage", a.filter.min_speech_coverage, 0.0..=1.0),
            ("silence.min_s", self.silence.min_s, 0.1..=3600.0),
            ("hold.min_s", self.hold.min_s, 0.1..=3600.0),
            ("hold.phrase_within_s", self.hold.phrase_within_s, 0.0..=600.0),
            ("hold.music_min_s", self.hold.music_min_s, 0.5..=3600.0),
            ("interruption.grace_s", self.interruption.grace_s, 0.0..=60.0),
            ("interruption.min_overlap_s", self.interruption.min_overlap_s, 0.01..=60.0),
            ("rate.max_cpm", self.rate.max_cpm, 1.0..=10_000.0),
            ("rate.max_wpm", self.rate.max_wpm, 1.0..=10_000.0),
            ("rate.min_utterance_s", self.rate.min_utterance_s, 0.0..=60.0),
            ("matching.max_edit_ratio_zh", self.matching.max_edit_ratio_zh, 0.0..=1.0),
            ("matching.max_edit_ratio_words", self.matching.max_edit_ratio_words, 0.0..=1.0),
            ("scorecard.long_silence_s", self.scorecard.long_silence_s, 0.1..=86_400.0),
            ("scorecard.long_silence_points", self.scorecard.long_silence_points, 0.0..=100.0),
            ("scorecard.max_agent_interruptions", self.scorecard.max_agent_interruptions as f64, 0.0..=10_000.0),
            ("scorecard.agent_interruption_points", self.scorecard.agent_interruption_points, 0.0..=100.0),
            ("scorecard.fast_speech_points", self.scorecard.fast_speech_points, 0.0..=100.0),
            ("scorecard.long_hold_s", self.scorecard.long_hold_s, 0.1..=86_400.0),
            ("scorecard.long_hold_points", self.scorecard.long_hold_points, 0.0..=100.0),
            ("scorecard.max_holds", self.scorecard.max_holds as f64, 0.0..=10_000.0),
            ("scorecard.many_holds_points", self.scorecard.many_holds_points, 0.0..=100.0),
            ("scorecard.review_below_score", self.scorecard.review_below_score, 0.0..=100.0),
            ("privacy.utterance_gap_s", self.privacy.utterance_gap_s, 0.0..=3600.0),
            ("privacy.audio_pad_s", self.privacy.audio_pad_s, 0.0..=10.0),
        ];
        let mut ids = std::collections::HashSet::new();
        let rule_keys: Vec<(String, f64, std::ops::RangeInclusive<f64>)> = self
            .phrases
            .iter()
            .flat_map(|rule| {
                let key = |field: &str| format!("phrases[{:?}].{field}", rule.id);
                let windows = [
                    ("within_first_s", rule.within_first_s),
                    ("within_last_s", rule.within_last_s),
                    ("before_hold_within_s", rule.before_hold_within_s),
                    ("after_hold_within_s", rule.after_hold_within_s),
                    ("after_silence_min_s", rule.after_silence_min_s),
                    ("after_silence_within_s", rule.after_silence_within_s),
                    ("before_silence_min_s", rule.before_silence_min_s),
                    ("before_silence_within_s", rule.before_silence_within_s),
                ];
                std::iter::once((key("points"), rule.points, 0.0..=100.0))
                    .chain(windows.into_iter().filter_map(move |(field, v)| v.map(|v| (key(field), v, 0.0..=86_400.0))))
            })
            .collect();
        checks.extend(rule_keys.iter().map(|(k, v, r)| (k.as_str(), *v, r.clone())));
        for (key, value, range) in checks {
            // NaN fails `contains`, so it is named like any other value out of range.
            if !range.contains(&value) {
                return Err(format!("{key} = {value} is out of range: allowed {} to {}", range.start(), range.end()));
            }
        }
        for rule in &self.phrases {
            if !ids.insert(rule.id.as_str()) {
                return Err(format!("phrase rule id {:?} is used twice", rule.id));
            }
            if rule.patterns.iter().all(|p| p.trim().is_empty()) {
                return Err(format!("phrase rule {:?} has no patterns", rule.id));
            }
        }
        Ok(())
    }

    pub fn metric_settings(&self) -> MetricSettings<'_> {
        MetricSettings { silence: &self.silence, interruption: &self.interruption, rate: &self.rate }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_equals_the_defaults() {
        let example = include_str!("../fixtures/callqa.example.toml");
        assert_eq!(Config::parse(example).unwrap(), Config::default());
        assert_eq!(example, Config::default().to_toml(), "regenerate it with `callqa config`");
        assert_eq!(Config::parse(&Config::default().to_toml()).unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[asr]\nlanguag = \"zh\"\n").unwrap_err();
        assert!(err.contains("languag"), "{err}");
        let err = Config::parse("[nonsense]\n").unwrap_err();
        assert!(err.contains("nonsense"), "{err}");
    }

    #[test]
    fn partial_files_keep_other_defaults_and_values_are_checked() {
        let c = Config::parse("[asr]\nlanguage = \"zh\"\n").unwrap();
        assert_eq!(c.asr.language, "zh");
        assert_eq!(c.asr.beam_size, AsrSettings::default().beam_size);
        assert!(Config::parse("[channels]\nagent_channel = 3\n").unwrap_err().contains("agent_channel"));
        let twice =
            "[[phrases]]\nid = \"x\"\nkind = \"forbidden\"\npatterns = [\"a\"]\nseverity = \"minor\"\npoints = 1\n";
        assert!(Config::parse(&twice.repeat(2)).unwrap_err().contains("used twice"));
        let custom = Config::parse(twice).unwrap();
        assert_eq!(custom.phrases.len(), 1, "a config's [[phrases]] replace the default lexicon");
        assert!(Config::parse(&twice.replace("kind", "knd")).unwrap_err().contains("knd"));
    }

    #[test]
    fn settings_that_used_to_pass_and_break_are_refused_by_key() {
        for (text, key) in [
            ("[asr]\nthreads = 1000\n", "asr.threads"),
            ("[asr]\nthreads = 100000\n", "asr.threads"),
            ("[asr]\nbeam_size = 100000\n", "asr.beam_size"),
            ("[asr]\nbeam_size = 0\n", "asr.beam_size"),
            ("[asr]\nwindow_pad_s = -5.0\n", "asr.window_pad_s"),
            ("[decode]\nmax_duration_s = inf\n", "decode.max_duration_s"),
            ("[decode]\nmax_duration_s = nan\n", "decode.max_duration_s"),
            ("[silence]\nmin_s = nan\n", "silence.min_s"),
            ("[interruption]\nmin_overlap_s = nan\n", "interruption.min_overlap_s"),
            ("[vad]\nbleed_margin_db = nan\n", "vad.bleed_margin_db"),
            ("[scorecard]\nlong_silence_points = nan\n", "scorecard.long_silence_points"),
            ("[run]\ncommit_every = 0\n", "run.commit_every"),
            (
                "[[phrases]]\nid = \"x\"\nkind = \"forbidden\"\npatterns = [\"a\"]\nseverity = \"minor\"\npoints = nan\n",
                "phrases[\"x\"].points",
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.starts_with(key) && err.contains("allowed"), "{text:?}: {err}");
        }
        let cores = std::thread::available_parallelism().unwrap().get();
        assert!(Config::parse(&format!("[asr]\nthreads = {cores}\n")).is_ok());
    }
}
