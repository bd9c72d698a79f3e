//! Talking over the other party.
//!
//! **Definition.** Speaker X *interrupts* Y when X starts speaking while Y is speaking, Y had
//! been speaking for at least `interruption.grace_s`, and both then speak together for at
//! least `interruption.min_overlap_s`. The event is attributed to X and spans the overlap.
//!
//! **Why it matters.** Agents cutting customers off is a standard QA deduction; customers
//! cutting agents off marks frustration.
//!
//! **Example.** Customer speaks 10.0-14.0; agent starts at 12.0 and speaks to 15.0: an
//! interruption by the agent, 12.0-14.0. Short backchannels ("嗯", "对", "okay") overlap for
//! less than `min_overlap_s` and do not count; a reply that starts just as the other party
//! begins (within `grace_s`) is a simultaneous start, not an interruption.

use serde::{Deserialize, Serialize};

use crate::record::{Event, EventKind, Speaker, SpeechInterval};

/// `[interruption]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterruptionSettings {
    /// The interrupted party must have been speaking this long (seconds). Default 1.0.
    pub grace_s: f64,
    /// Both must then speak together at least this long (seconds). Default 0.5.
    pub min_overlap_s: f64,
}

impl Default for InterruptionSettings {
    fn default() -> Self {
        InterruptionSettings { grace_s: 1.0, min_overlap_s: 0.5 }
    }
}

/// Interruptions by `by` of `of`.
pub fn interruptions(
    by: (Speaker, &[SpeechInterval]),
    of: (Speaker, &[SpeechInterval]),
    settings: &InterruptionSettings,
) -> Vec<Event> {
    let mut events = Vec::new();
    for x in by.1 {
        let Some(y) = of.1.iter().find(|y| y.start_s < x.start_s && x.start_s < y.end_s) else { continue };
        let spoken_before = x.start_s - y.start_s;
        let overlap = x.end_s.min(y.end_s) - x.start_s;
        if spoken_before >= settings.grace_s && overlap >= settings.min_overlap_s {
            events.push(Event::metric(
                EventKind::Interruption,
                Some(by.0),
                x.start_s,
                x.start_s + overlap,
                format!(
                    "{} started after the {} had spoken {:.1} s; both spoke for {:.1} s",
                    by.0, of.0, spoken_before, overlap
                ),
            ));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    #[test]
    fn definition_edges() {
        let s = InterruptionSettings::default();
        let customer = [iv(10.0, 14.0)];
        let hit = |agent: &[SpeechInterval]| interruptions((Speaker::Agent, agent), (Speaker::Customer, &customer), &s);
        let e = hit(&[iv(12.0, 15.0)]);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].speaker, e[0].start_s, e[0].end_s), (Some(Speaker::Agent), 12.0, 14.0));
        assert!(hit(&[iv(10.9, 15.0)]).is_empty(), "within the grace period");
        assert_eq!(hit(&[iv(11.0, 15.0)]).len(), 1, "exactly the grace period");
        assert!(hit(&[iv(13.7, 14.1)]).is_empty(), "backchannel: 0.3 s overlap");
        assert_eq!(hit(&[iv(13.5, 14.5)]).len(), 1, "exactly the minimum overlap");
        assert!(hit(&[iv(9.0, 15.0)]).is_empty(), "started first: the customer interrupted, not the agent");
        assert!(hit(&[iv(14.2, 16.0)]).is_empty(), "after the customer finished");
    }
}
