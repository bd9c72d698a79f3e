//! Call metrics: speech intervals (and, when transcribed, utterances) -> numbers and events.
//!
//! Pure functions over [`SpeechInterval`]s and [`Utterance`]s, no audio: talk time and overlap
//! per speaker, holds ([`hold`]), dead air ([`silence`]: long gaps that are not holds), talking
//! over ([`interruption`]) and speaking rate ([`rate`]). On mono recordings everything that
//! needs two speakers is `None` (null in the tables, never zero); silence, holds and rate work
//! on the mix.

pub mod hold;
pub mod interruption;
pub mod intervals;
pub mod rate;
pub mod silence;

use crate::record::{Event, EventKind, Speaker, SpeechInterval, Utterance};
use hold::Hold;
use interruption::InterruptionSettings;
use rate::{RateSettings, RateUnit};
use silence::SilenceSettings;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallMetrics {
    pub agent_talk_s: Option<f64>,
    pub customer_talk_s: Option<f64>,
    /// Both parties speaking at once.
    pub overlap_s: Option<f64>,
    pub interruptions_by_agent: Option<u32>,
    pub interruptions_by_customer: Option<u32>,
    /// Anyone speaking (union of all channels).
    pub speech_s: f64,
    pub silence_s: f64,
    pub silence_events: u32,
    pub silence_max_s: f64,
    pub hold_count: u32,
    pub hold_s: f64,
    pub hold_max_s: f64,
    pub first_agent_speech_s: Option<f64>,
    pub agent_rate: Option<f64>,
    pub customer_rate: Option<f64>,
    /// All speech of the call (the only rate on mono recordings).
    pub overall_rate: Option<f64>,
    pub rate_unit: Option<RateUnit>,
}

pub struct MetricSettings<'a> {
    pub silence: &'a SilenceSettings,
    pub interruption: &'a InterruptionSettings,
    pub rate: &'a RateSettings,
}

fn of<'a>(speech: &'a [(Speaker, Vec<SpeechInterval>)], who: Speaker) -> Option<&'a [SpeechInterval]> {
    speech.iter().find(|(s, _)| *s == who).map(|(_, v)| v.as_slice())
}

fn hold_event(hold: &Hold, speaker: Speaker) -> Event {
    let cause = match (&hold.phrase, hold.music) {
        (Some(phrase), true) => format!("after \"{phrase}\", with music or a tone"),
        (Some(phrase), false) => format!("after \"{phrase}\""),
        (None, _) => "with music or a tone, no hold phrase heard".to_string(),
    };
    let detail = format!("customer on hold for {:.0} s {cause}", hold.end_s - hold.start_s);
    Event::metric(EventKind::Hold, Some(speaker), hold.start_s, hold.end_s, detail)
}

/// Compute a call's metrics and events. `language` is `None` when nothing was transcribed:
/// rates are then `None`. `holds` come from [`hold::holds`]; their time is not dead air.
pub fn compute(
    speech: &[(Speaker, Vec<SpeechInterval>)],
    utterances: &[Utterance],
    language: Option<&str>,
    holds: &[Hold],
    settings: &MetricSettings,
) -> (CallMetrics, Vec<Event>) {
    let lists: Vec<&[SpeechInterval]> = speech.iter().map(|(_, v)| v.as_slice()).collect();
    let hold_intervals: Vec<SpeechInterval> = holds.iter().map(Hold::interval).collect();
    let mut occupied = lists.clone();
    occupied.push(&hold_intervals);
    let mut events = silence::silence_events(&occupied, settings.silence);
    let mut m = CallMetrics {
        speech_s: intervals::total(&intervals::union(&lists)),
        silence_events: events.len() as u32,
        silence_s: events.iter().map(|e| e.end_s - e.start_s).sum(),
        silence_max_s: events.iter().map(|e| e.end_s - e.start_s).fold(0.0, f64::max),
        hold_count: holds.len() as u32,
        hold_s: intervals::total(&hold_intervals),
        hold_max_s: hold_intervals.iter().map(SpeechInterval::duration_s).fold(0.0, f64::max),
        ..Default::default()
    };
    let holder = speech.iter().map(|(s, _)| *s).find(|s| s.is_agent_side()).unwrap_or(Speaker::Mixed);
    events.extend(holds.iter().map(|h| hold_event(h, holder)));
    let two_party = of(speech, Speaker::Agent).zip(of(speech, Speaker::Customer));
    if let Some((agent, customer)) = two_party {
        m.agent_talk_s = Some(intervals::total(agent));
        m.customer_talk_s = Some(intervals::total(customer));
        m.overlap_s = Some(intervals::intersection_total(agent, customer));
        m.first_agent_speech_s = agent.first().map(|iv| iv.start_s);
        let by_agent =
            interruption::interruptions((Speaker::Agent, agent), (Speaker::Customer, customer), settings.interruption);
        let by_customer =
            interruption::interruptions((Speaker::Customer, customer), (Speaker::Agent, agent), settings.interruption);
        m.interruptions_by_agent = Some(by_agent.len() as u32);
        m.interruptions_by_customer = Some(by_customer.len() as u32);
        events.extend(by_agent);
        events.extend(by_customer);
    }
    if let Some(language) = language {
        let unit = RateUnit::for_language(language);
        let units_of = |who: Option<Speaker>| -> usize {
            utterances.iter().filter(|u| who.is_none_or(|w| u.speaker == w)).map(|u| rate::units(&u.text, unit)).sum()
        };
        m.rate_unit = Some(unit);
        m.overall_rate = rate::rate(units_of(None), m.speech_s);
        if two_party.is_some() {
            m.agent_rate = m.agent_talk_s.and_then(|t| rate::rate(units_of(Some(Speaker::Agent)), t));
            m.customer_rate = m.customer_talk_s.and_then(|t| rate::rate(units_of(Some(Speaker::Customer)), t));
        }
        events.extend(rate::fast_speech_events(utterances, unit, settings.rate));
    }
    crate::record::sort_events(&mut events);
    (m, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    fn settings() -> (SilenceSettings, InterruptionSettings, RateSettings) {
        Default::default()
    }

    #[test]
    fn two_party_call() {
        let (s, i, r) = settings();
        let speech = vec![
            (Speaker::Agent, vec![iv(1.0, 4.0), iv(12.0, 16.0)]),
            (Speaker::Customer, vec![iv(4.5, 6.0), iv(14.0, 15.0)]),
        ];
        let utterances = vec![Utterance {
            speaker: Speaker::Agent,
            start_s: 1.0,
            end_s: 4.0,
            text: "您好请问有什么可以帮您".into(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            tokens: vec![],
        }];
        let (m, events) =
            compute(&speech, &utterances, Some("zh"), &[], &MetricSettings { silence: &s, interruption: &i, rate: &r });
        assert_eq!(m.agent_talk_s, Some(7.0));
        assert_eq!(m.customer_talk_s, Some(2.5));
        assert_eq!(m.overlap_s, Some(1.0));
        assert_eq!(m.speech_s, 8.5);
        assert_eq!((m.silence_events, m.silence_s, m.silence_max_s), (1, 6.0, 6.0));
        assert_eq!(m.first_agent_speech_s, Some(1.0));
        assert_eq!((m.interruptions_by_agent, m.interruptions_by_customer), (Some(0), Some(1)));
        // 11 characters over the agent's 7 s of speech.
        assert!((m.agent_rate.unwrap() - 11.0 * 60.0 / 7.0).abs() < 1e-9);
        assert_eq!(m.customer_rate, Some(0.0));
        assert_eq!(m.rate_unit, Some(RateUnit::Cpm));
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::Silence, EventKind::Interruption]);
    }

    #[test]
    fn mono_has_null_two_party_metrics_but_silence_and_rate() {
        let (s, i, r) = settings();
        let speech = vec![(Speaker::Mixed, vec![iv(0.0, 2.0), iv(9.0, 10.0)])];
        let (m, events) =
            compute(&speech, &[], Some("en"), &[], &MetricSettings { silence: &s, interruption: &i, rate: &r });
        assert_eq!(m.agent_talk_s, None);
        assert_eq!(m.overlap_s, None);
        assert_eq!(m.interruptions_by_agent, None);
        assert_eq!(m.first_agent_speech_s, None);
        assert_eq!(m.agent_rate, None);
        assert_eq!(m.overall_rate, Some(0.0));
        assert_eq!(m.silence_events, 1);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_hold_is_counted_and_is_not_dead_air() {
        let (s, i, r) = settings();
        let speech = vec![
            (Speaker::Agent, vec![iv(0.0, 4.0), iv(30.0, 34.0), iv(50.0, 52.0)]),
            (Speaker::Customer, vec![iv(4.5, 6.0), iv(12.0, 13.0)]),
        ];
        let held = [Hold { start_s: 4.0, end_s: 30.0, phrase: Some("请稍等".into()), music: false }];
        let (m, events) =
            compute(&speech, &[], None, &held, &MetricSettings { silence: &s, interruption: &i, rate: &r });
        assert_eq!((m.hold_count, m.hold_s, m.hold_max_s), (1, 26.0, 26.0));
        // 6-12 and 13-30 fall inside the hold; 34-50 is dead air.
        assert_eq!((m.silence_events, m.silence_s), (1, 16.0));
        let kinds: Vec<(EventKind, f64)> = events.iter().map(|e| (e.kind, e.start_s)).collect();
        assert_eq!(kinds, vec![(EventKind::Hold, 4.0), (EventKind::Silence, 34.0)]);
        assert_eq!(events[0].speaker, Some(Speaker::Agent));
    }

    #[test]
    fn without_transcripts_rates_are_null() {
        let (s, i, r) = settings();
        let speech = vec![(Speaker::Agent, vec![iv(0.0, 2.0)]), (Speaker::Customer, vec![])];
        let (m, _) = compute(&speech, &[], None, &[], &MetricSettings { silence: &s, interruption: &i, rate: &r });
        assert_eq!((m.agent_rate, m.overall_rate, m.rate_unit), (None, None, None));
        assert_eq!(m.customer_talk_s, Some(0.0));
    }
}
