//! Phrase rules and the QA scorecard: utterances (with token times) + metrics -> events and a
//! 0-100 score.
//!
//! A rule lists patterns a speaker must not say (`forbidden`) or must say (`required`),
//! optionally only in a window: the first / last N seconds, within N seconds before or after
//! each hold ([`crate::metrics::hold`]), or before or after each silence of at least M
//! seconds. Matching is on normalised text and, for recognition errors, by sound ([`units`],
//! [`matcher`]). Each hit or miss is an event with the words' own times; each violated rule
//! deducts its points once, and the [`scorecard`] adds deductions for metric thresholds.
//! `qa_score = max(0, 100 - sum(points))`, so the events explain every point lost.

pub mod lexicon;
pub mod matcher;
pub mod scorecard;
pub mod units;

use serde::{Deserialize, Serialize};

use crate::metrics::intervals;
use crate::record::{Event, EventKind, Severity, Speaker, SpeechInterval, Utterance};
use matcher::Match;
use units::Unit;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    #[default]
    Forbidden,
    Required,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerScope {
    #[default]
    Agent,
    Customer,
    Any,
}

impl SpeakerScope {
    /// Mono recordings cannot tell speakers apart: `mixed` speech is in every scope.
    fn covers(self, speaker: Speaker) -> bool {
        matches!((self, speaker), (SpeakerScope::Any, _) | (_, Speaker::Mixed))
            || (self == SpeakerScope::Agent && speaker == Speaker::Agent)
            || (self == SpeakerScope::Customer && speaker == Speaker::Customer)
    }

    fn speaker(self) -> Option<Speaker> {
        match self {
            SpeakerScope::Agent => Some(Speaker::Agent),
            SpeakerScope::Customer => Some(Speaker::Customer),
            SpeakerScope::Any => None,
        }
    }
}

/// One `[[phrases]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhraseRule {
    pub id: String,
    pub kind: RuleKind,
    #[serde(default)]
    pub speaker: SpeakerScope,
    pub patterns: Vec<String>,
    /// Only for calls in this language ("zh", "en"); absent = every language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Window: within the first N seconds of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_first_s: Option<f64>,
    /// Window: within the last N seconds of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_last_s: Option<f64>,
    /// Window: within this many seconds before each hold starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_hold_within_s: Option<f64>,
    /// Window: within this many seconds after each hold ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hold_within_s: Option<f64>,
    /// Window: after each silence of at least this many seconds ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_silence_min_s: Option<f64>,
    /// ... within this many seconds of its end (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_silence_within_s: Option<f64>,
    /// Window: before each silence of at least this many seconds ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_silence_min_s: Option<f64>,
    /// ... within this many seconds of its start (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_silence_within_s: Option<f64>,
    pub severity: Severity,
    /// Deducted from qa_score once per call when the rule is violated.
    pub points: f64,
}

impl Default for PhraseRule {
    fn default() -> Self {
        PhraseRule {
            id: String::new(),
            kind: RuleKind::Forbidden,
            speaker: SpeakerScope::Agent,
            patterns: vec![],
            language: None,
            within_first_s: None,
            within_last_s: None,
            before_hold_within_s: None,
            after_hold_within_s: None,
            after_silence_min_s: None,
            after_silence_within_s: None,
            before_silence_min_s: None,
            before_silence_within_s: None,
            severity: Severity::Minor,
            points: 0.0,
        }
    }
}

/// `[matching]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchSettings {
    /// Match by sound (pinyin) and with a few word errors, not only exactly. Default true.
    pub fuzzy: bool,
    /// Chinese: syllable edits allowed per syllable of the phrase (0.34: one edit from 3
    /// syllables, two from 6; a phrase under 4 syllables takes one near sound at most).
    /// Homophones need no edit. Default 0.34 (README, Phrase rules: measured recall levers).
    pub max_edit_ratio_zh: f64,
    /// Other languages: word edits allowed per word of the phrase. Default 0.25.
    pub max_edit_ratio_words: f64,
    /// Chinese: a syllable that shares its initial or its final with the phrase's (房/佛,
    /// 介/间) costs half an edit instead of one. Default true (README, Phrase rules).
    pub near_sounds: bool,
}

impl Default for MatchSettings {
    fn default() -> Self {
        MatchSettings { fuzzy: true, max_edit_ratio_zh: 0.34, max_edit_ratio_words: 0.25, near_sounds: true }
    }
}

/// One speaker's words in time order, as units pointing at timed tokens.
struct Stream {
    speaker: Speaker,
    units: Vec<Unit>,
    /// (start_s, end_s, text) per token.
    tokens: Vec<(f64, f64, String)>,
}

fn streams(utterances: &[Utterance]) -> Vec<Stream> {
    let mut speakers: Vec<Speaker> = utterances.iter().map(|u| u.speaker).collect();
    speakers.sort();
    speakers.dedup();
    speakers
        .into_iter()
        .map(|speaker| {
            let mut stream = Stream { speaker, units: Vec::new(), tokens: Vec::new() };
            for u in utterances.iter().filter(|u| u.speaker == speaker) {
                let pieces: Vec<(f64, f64, &str)> = if u.tokens.is_empty() {
                    vec![(u.start_s, u.end_s, u.text.as_str())]
                } else {
                    u.tokens.iter().map(|t| (t.start_s, t.end_s, t.text.as_str())).collect()
                };
                stream.units.extend(units::utterance_units(pieces.iter().map(|p| p.2), stream.tokens.len()));
                stream.tokens.extend(pieces.into_iter().map(|(start, end, text)| (start, end, text.to_string())));
            }
            stream
        })
        .collect()
}

/// A time range a hit must fall in; `anchor` says which silence or edge it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start_s: f64,
    end_s: f64,
}

fn windows(rule: &PhraseRule, speech: &[&[SpeechInterval]], holds: &[SpeechInterval], duration_s: f64) -> Vec<Window> {
    if let Some(within) = rule.before_hold_within_s {
        return holds.iter().map(|h| Window { start_s: (h.start_s - within).max(0.0), end_s: h.start_s }).collect();
    }
    if let Some(within) = rule.after_hold_within_s {
        return holds.iter().map(|h| Window { start_s: h.end_s, end_s: (h.end_s + within).min(duration_s) }).collect();
    }
    let silences = |min_s: f64| -> Vec<SpeechInterval> {
        intervals::gaps(&intervals::union(speech)).into_iter().filter(|g| g.duration_s() >= min_s).collect()
    };
    if let Some(min_s) = rule.after_silence_min_s {
        let within = rule.after_silence_within_s.unwrap_or(15.0);
        return silences(min_s).iter().map(|g| Window { start_s: g.end_s, end_s: g.end_s + within }).collect();
    }
    if let Some(min_s) = rule.before_silence_min_s {
        let within = rule.before_silence_within_s.unwrap_or(15.0);
        return silences(min_s)
            .iter()
            .map(|g| Window { start_s: (g.start_s - within).max(0.0), end_s: g.start_s })
            .collect();
    }
    let start_s = rule.within_last_s.map_or(0.0, |n| (duration_s - n).max(0.0));
    let end_s = rule.within_first_s.map_or(duration_s, |n| n.min(duration_s));
    vec![Window { start_s, end_s }]
}

/// Everything phrase rules need about a call.
pub struct CallText<'a> {
    pub utterances: &'a [Utterance],
    pub speech: &'a [(Speaker, Vec<SpeechInterval>)],
    pub duration_s: f64,
    pub language: &'a str,
    pub holds: &'a [SpeechInterval],
}

struct Hit {
    speaker: Speaker,
    start_s: f64,
    end_s: f64,
    text: String,
    found: Match,
}

fn find_hits(rule: &PhraseRule, streams: &[Stream], settings: &MatchSettings) -> Vec<Hit> {
    let mut hits = Vec::new();
    for stream in streams.iter().filter(|s| rule.speaker.covers(s.speaker)) {
        let mut taken: Vec<Match> = Vec::new();
        for pattern in &rule.patterns {
            let phrase = units::units(pattern);
            let chinese = phrase.iter().any(|u| u.text.chars().any(crate::textnorm::is_han));
            let ratio = if chinese { settings.max_edit_ratio_zh } else { settings.max_edit_ratio_words };
            let mut found = matcher::find_exact(&stream.units, &phrase);
            found.retain(|m| !taken.iter().any(|t| m.start < t.end && t.start < m.end));
            taken.extend(found.iter().cloned());
            if settings.fuzzy {
                let fuzzy = matcher::find_fuzzy(&stream.units, &phrase, ratio, settings.near_sounds, &taken);
                taken.extend(fuzzy.iter().cloned());
                found.extend(fuzzy);
            }
            for m in found {
                let (first, last) = (stream.units[m.start].first_token, stream.units[m.end - 1].last_token);
                let text: String =
                    stream.tokens[first..=last].iter().map(|t| t.2.as_str()).collect::<String>().trim().to_string();
                hits.push(Hit {
                    speaker: stream.speaker,
                    start_s: stream.tokens[first].0,
                    end_s: stream.tokens[last].1,
                    text,
                    found: m,
                });
            }
        }
    }
    hits.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    hits
}

/// Where `speaker`'s words match any of `patterns` (as phrase rules match): (start_s, end_s,
/// text as transcribed), in time order.
pub fn phrase_times(
    utterances: &[Utterance],
    speaker: Speaker,
    patterns: &[String],
    settings: &MatchSettings,
) -> Vec<(f64, f64, String)> {
    let scope = match speaker {
        Speaker::Customer => SpeakerScope::Customer,
        Speaker::Agent | Speaker::Mixed => SpeakerScope::Agent,
    };
    let rule = PhraseRule { speaker: scope, patterns: patterns.to_vec(), ..Default::default() };
    find_hits(&rule, &streams(utterances), settings).into_iter().map(|h| (h.start_s, h.end_s, h.text)).collect()
}

/// Events for every rule that applies to the call. A rule's first violation carries its
/// points; later ones of the same rule carry 0.
pub fn evaluate(rules: &[PhraseRule], settings: &MatchSettings, call: &CallText) -> Vec<Event> {
    let streams = streams(call.utterances);
    let speech: Vec<&[SpeechInterval]> = call.speech.iter().map(|(_, v)| v.as_slice()).collect();
    let mut events = Vec::new();
    for rule in rules.iter().filter(|r| r.language.as_deref().is_none_or(|l| l == call.language)) {
        let hits = find_hits(rule, &streams, settings);
        let windows = windows(rule, &speech, call.holds, call.duration_s);
        let inside = |h: &Hit, w: &Window| h.start_s >= w.start_s - 0.5 && h.end_s <= w.end_s + 0.5;
        let mut first = true;
        let mut points = || std::mem::replace(&mut first, false).then_some(rule.points).or(Some(0.0));
        match rule.kind {
            RuleKind::Forbidden => {
                for h in hits.iter().filter(|h| windows.iter().any(|w| inside(h, w))) {
                    events.push(Event {
                        rule_id: Some(rule.id.clone()),
                        severity: Some(rule.severity),
                        matched_text: Some(h.text.clone()),
                        match_type: Some(h.found.match_type.as_str()),
                        similarity: Some(h.found.similarity),
                        points: points(),
                        ..Event::metric(
                            EventKind::ForbiddenPhrase,
                            Some(h.speaker),
                            h.start_s,
                            h.end_s,
                            format!(
                                "{} said a banned phrase ({} match, similarity {:.2})",
                                h.speaker,
                                h.found.match_type.as_str(),
                                h.found.similarity
                            ),
                        )
                    });
                }
            }
            RuleKind::Required => {
                for w in windows.iter().filter(|w| !hits.iter().any(|h| inside(h, w))) {
                    events.push(Event {
                        rule_id: Some(rule.id.clone()),
                        severity: Some(rule.severity),
                        points: points(),
                        ..Event::metric(
                            EventKind::RequiredPhraseMissing,
                            rule.speaker.speaker(),
                            w.start_s,
                            w.end_s,
                            format!("none of {:?} said in this window", rule.patterns),
                        )
                    });
                }
            }
        }
    }
    events
}

#[cfg(test)]
mod tests;
