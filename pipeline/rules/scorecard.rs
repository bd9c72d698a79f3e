//! Metric deductions of the QA scorecard and the final score.
//!
//! Thresholds on the measured metrics become `metric_threshold` events carrying points, so a
//! score of 82 is explained row by row in `events`.

use serde::{Deserialize, Serialize};

use crate::metrics::CallMetrics;
use crate::record::{Event, EventKind, Severity, Speaker};

/// `[scorecard]` settings. A `*_points` of 0 turns the check off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorecardSettings {
    /// A silence event at least this long (seconds) deducts `long_silence_points`. Default 30.
    pub long_silence_s: f64,
    /// Default 10.
    pub long_silence_points: f64,
    /// More interruptions by the agent than this deducts `agent_interruption_points`. Default 2.
    pub max_agent_interruptions: u32,
    /// Default 5.
    pub agent_interruption_points: f64,
    /// Any fast_speech event of the agent deducts this. Default 3.
    pub fast_speech_points: f64,
    /// A hold at least this long (seconds) deducts `long_hold_points`. Default 120 (Calabrio's
    /// "hold over 2 minutes").
    pub long_hold_s: f64,
    /// Default 5.
    pub long_hold_points: f64,
    /// More holds than this deducts `many_holds_points`. Default 3.
    pub max_holds: u32,
    /// Default 5.
    pub many_holds_points: f64,
    /// `callqa sample` and `report` flag a call as a risk for human review when its qa_score
    /// is below this (and when it crosses any threshold above). Default 80.
    pub review_below_score: f64,
}

impl Default for ScorecardSettings {
    fn default() -> Self {
        ScorecardSettings {
            long_silence_s: 30.0,
            long_silence_points: 10.0,
            max_agent_interruptions: 2,
            agent_interruption_points: 5.0,
            fast_speech_points: 3.0,
            long_hold_s: 120.0,
            long_hold_points: 5.0,
            max_holds: 3,
            many_holds_points: 5.0,
            review_below_score: 80.0,
        }
    }
}

fn deduction(rule_id: &str, severity: Severity, points: f64, cause: &Event, detail: String) -> Event {
    Event {
        rule_id: Some(rule_id.into()),
        severity: Some(severity),
        points: Some(points),
        ..Event::metric(EventKind::MetricThreshold, cause.speaker, cause.start_s, cause.end_s, detail)
    }
}

/// Deduction events for the metric thresholds, each anchored at the event that crossed it.
pub fn metric_deductions(metrics: &CallMetrics, events: &[Event], s: &ScorecardSettings) -> Vec<Event> {
    let mut out = Vec::new();
    let longest = |kind: EventKind, limit_s: f64| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.end_s - e.start_s >= limit_s)
            .max_by(|a, b| (a.end_s - a.start_s).total_cmp(&(b.end_s - b.start_s)))
    };
    if let (Some(e), true) = (longest(EventKind::Silence, s.long_silence_s), s.long_silence_points > 0.0) {
        out.push(deduction(
            "scorecard.long_silence",
            Severity::Major,
            s.long_silence_points,
            e,
            format!("dead air of {:.0} s (limit {:.0} s)", e.end_s - e.start_s, s.long_silence_s),
        ));
    }
    if let (Some(e), true) = (longest(EventKind::Hold, s.long_hold_s), s.long_hold_points > 0.0) {
        out.push(deduction(
            "scorecard.long_hold",
            Severity::Major,
            s.long_hold_points,
            e,
            format!("customer on hold for {:.0} s (limit {:.0} s)", e.end_s - e.start_s, s.long_hold_s),
        ));
    }
    let holds: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::Hold).collect();
    let over_the_limit = holds.get(s.max_holds as usize).filter(|_| metrics.hold_count > s.max_holds);
    if let (Some(e), true) = (over_the_limit, s.many_holds_points > 0.0) {
        out.push(deduction(
            "scorecard.many_holds",
            Severity::Minor,
            s.many_holds_points,
            e,
            format!("customer put on hold {} times (limit {})", holds.len(), s.max_holds),
        ));
    }
    let by_agent: Vec<&Event> =
        events.iter().filter(|e| e.kind == EventKind::Interruption && e.speaker == Some(Speaker::Agent)).collect();
    if s.agent_interruption_points > 0.0
        && metrics.interruptions_by_agent.is_some_and(|n| n > s.max_agent_interruptions)
    {
        let e = by_agent[s.max_agent_interruptions as usize];
        out.push(deduction(
            "scorecard.agent_interruptions",
            Severity::Major,
            s.agent_interruption_points,
            e,
            format!("agent interrupted {} times (limit {})", by_agent.len(), s.max_agent_interruptions),
        ));
    }
    let fast = events.iter().find(|e| e.kind == EventKind::FastSpeech && e.speaker != Some(Speaker::Customer));
    if let (Some(e), true) = (fast, s.fast_speech_points > 0.0) {
        out.push(deduction(
            "scorecard.fast_speech",
            Severity::Minor,
            s.fast_speech_points,
            e,
            format!("agent spoke too fast: {}", e.detail),
        ));
    }
    out
}

/// 100 minus every deduction, floored at 0.
pub fn qa_score(events: &[Event]) -> f64 {
    (100.0 - events.iter().filter_map(|e| e.points).sum::<f64>()).max(0.0)
}
