//! Configuration: one TOML file -> [`Config`], every field with a documented default.
//!
//! Unknown keys are errors that name the key, so a misspelt setting never silently does
//! nothing. `callqa config` prints the effective configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::asr::AsrSettings;
use crate::metrics::interruption::InterruptionSettings;
use crate::metrics::rate::RateSettings;
use crate::metrics::silence::SilenceSettings;
use crate::metrics::MetricSettings;
use crate::rules::scorecard::ScorecardSettings;
use crate::rules::{MatchSettings, PhraseRule};
use crate::vad::VadSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub decode: DecodeSettings,
    pub channels: ChannelSettings,
    pub vad: VadSettings,
    pub asr: AsrSettings,
    pub silence: SilenceSettings,
    pub interruption: InterruptionSettings,
    pub rate: RateSettings,
    pub matching: MatchSettings,
    pub scorecard: ScorecardSettings,
    /// Phrase rules (`[[phrases]]`); the default is the built-in lexicon. A config that lists
    /// any `[[phrases]]` replaces the whole list.
    pub phrases: Vec<PhraseRule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            decode: DecodeSettings::default(),
            channels: ChannelSettings::default(),
            vad: VadSettings::default(),
            asr: AsrSettings::default(),
            silence: SilenceSettings::default(),
            interruption: InterruptionSettings::default(),
            rate: RateSettings::default(),
            matching: MatchSettings::default(),
            scorecard: ScorecardSettings::default(),
            phrases: crate::rules::lexicon::default_rules(),
        }
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

    fn validate(&self) -> Result<(), String> {
        if self.channels.agent_channel > 1 {
            return Err(format!("channels.agent_channel must be 0 or 1, not {}", self.channels.agent_channel));
        }
        if !(1.0..=30.0).contains(&self.asr.max_window_s) {
            return Err("asr.max_window_s must be between 1 and 30 seconds".into());
        }
        if self.silence.min_s <= 0.0 || self.interruption.grace_s < 0.0 || self.interruption.min_overlap_s <= 0.0 {
            return Err(
                "silence.min_s and interruption.min_overlap_s must be positive, interruption.grace_s not negative"
                    .into(),
            );
        }
        let mut ids = std::collections::HashSet::new();
        for rule in &self.phrases {
            if !ids.insert(rule.id.as_str()) {
                return Err(format!("phrase rule id {:?} is used twice", rule.id));
            }
            if rule.patterns.iter().all(|p| p.trim().is_empty()) {
                return Err(format!("phrase rule {:?} has no patterns", rule.id));
            }
            if rule.points < 0.0 {
                return Err(format!("phrase rule {:?} has negative points", rule.id));
            }
        }
        if !(0.0..=1.0).contains(&self.vad.threshold) {
            return Err("vad.threshold must be between 0 and 1".into());
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
}
