//! Dead air.
//!
//! **Definition.** Silence is an interval after the call's first speech and before its last in
//! which nobody speaks (the union of every channel's speech has a gap). A *silence event* is a
//! gap of at least `silence.min_s`. `silence_s` is the total length of the events,
//! `silence_max_s` the longest.
//!
//! **Why it matters.** Long dead air is the customer waiting without being told why; QA
//! standards count holds without a "please wait" and returns without a "thank you for waiting".
//!
//! **Example.** Agent stops at 12.0 s, customer starts at 19.5 s: one 7.5 s event (default
//! threshold 5 s). A 4.5 s pause is not an event.

use serde::{Deserialize, Serialize};

use super::intervals::{gaps, union};
use crate::record::{Event, EventKind, SpeechInterval};

/// `[silence]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SilenceSettings {
    /// Shortest gap (seconds) reported as a silence event. Default 5.0.
    pub min_s: f64,
}

impl Default for SilenceSettings {
    fn default() -> Self {
        SilenceSettings { min_s: 5.0 }
    }
}

pub fn silence_events(speech: &[&[SpeechInterval]], settings: &SilenceSettings) -> Vec<Event> {
    gaps(&union(speech))
        .into_iter()
        .filter(|g| g.duration_s() >= settings.min_s)
        .map(|g| {
            Event::metric(
                EventKind::Silence,
                None,
                g.start_s,
                g.end_s,
                format!("nobody spoke for {:.1} s", g.duration_s()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    #[test]
    fn threshold_edges_and_both_channels_count_as_speech() {
        let agent = [iv(1.0, 3.0), iv(12.0, 13.0), iv(30.0, 31.0)];
        let customer = [iv(7.99, 9.0), iv(17.999, 18.5)];
        // gaps: 3.0-7.99 (4.99, under), 9-12 (3), 13-17.999 (4.999), 18.5-30 (11.5)
        let events = silence_events(&[&agent, &customer], &SilenceSettings::default());
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].start_s, events[0].end_s), (18.5, 30.0));
        let exactly = silence_events(&[&[iv(0.0, 1.0), iv(6.0, 7.0)]], &SilenceSettings::default());
        assert_eq!(exactly.len(), 1, "a gap of exactly min_s is an event");
        // Leading and trailing silence are not dead air.
        assert!(silence_events(&[&[iv(20.0, 21.0)]], &SilenceSettings::default()).is_empty());
    }
}
