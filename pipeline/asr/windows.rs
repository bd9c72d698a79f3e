//! Which audio Whisper decodes: speech intervals of one channel -> decode windows.
//!
//! Whisper pays a full 30 s encoder pass per window, and invents text on silence, so only
//! speech is sent: neighbouring intervals are grouped into windows of at most `max_window_s`
//! (padded by `pad_s` each side), and silence between windows is never decoded. Window
//! offsets map Whisper's timestamps back to call time.

use crate::record::SpeechInterval;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start_s: f64,
    pub end_s: f64,
}

/// Group intervals into windows no longer than `max_window_s` (a single longer interval
/// becomes its own window; Whisper seeks through it).
pub fn plan_windows(
    intervals: &[SpeechInterval],
    pad_s: f64,
    max_window_s: f64,
    length_s: f64,
) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    for iv in intervals {
        let start = (iv.start_s - pad_s).max(0.0);
        let end = (iv.end_s + pad_s).min(length_s);
        match windows.last_mut() {
            Some(w) if end - w.start_s <= max_window_s => w.end_s = w.end_s.max(end),
            _ => windows.push(Window {
                start_s: start,
                end_s: end,
            }),
        }
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    #[test]
    fn neighbours_share_a_window_until_it_is_full() {
        let ws = plan_windows(
            &[iv(1.0, 3.0), iv(5.0, 9.0), iv(20.0, 31.0), iv(40.0, 41.0)],
            0.2,
            28.0,
            60.0,
        );
        assert_eq!(ws.len(), 2);
        assert!((ws[0].start_s - 0.8).abs() < 1e-9 && (ws[0].end_s - 9.2).abs() < 1e-9);
        assert!((ws[1].start_s - 19.8).abs() < 1e-9 && (ws[1].end_s - 41.2).abs() < 1e-9);
    }

    #[test]
    fn windows_are_clipped_to_the_call_and_long_speech_stands_alone() {
        let ws = plan_windows(&[iv(0.0, 45.0), iv(45.5, 46.0)], 0.2, 28.0, 46.1);
        assert_eq!(ws.len(), 2);
        assert_eq!(ws[0].start_s, 0.0);
        assert!((ws[1].end_s - 46.1).abs() < 1e-9);
        assert!(plan_windows(&[], 0.2, 28.0, 10.0).is_empty());
    }
}
