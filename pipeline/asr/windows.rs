//! Which audio Whisper decodes: speech intervals of one channel -> packed decode windows.
//!
//! Whisper pays a full 30 s encoder pass per window and invents text on silence, so only
//! speech is sent. Each speech interval (padded by `pad_s`, merged with neighbours it then
//! touches) becomes a *piece*; pieces are laid end to end with `gap_s` of silence between
//! them into windows of at most `max_window_s`. A window remembers where each piece came
//! from, so any time inside the window maps back exactly to call time.

use crate::record::SpeechInterval;

/// A stretch of call audio placed into a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// Where the piece's audio starts and ends in the call (padding included).
    pub call_start_s: f64,
    pub call_end_s: f64,
    /// The detected speech inside it (padding excluded), in call time.
    pub speech_start_s: f64,
    pub speech_end_s: f64,
    /// Where the piece starts inside the window.
    pub window_start_s: f64,
}

impl Piece {
    /// Whether a span of call time reaches into the piece.
    pub fn overlaps(&self, start_s: f64, end_s: f64) -> bool {
        end_s > self.call_start_s && start_s < self.call_end_s
    }

    pub fn len_s(&self) -> f64 {
        self.call_end_s - self.call_start_s
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    pub pieces: Vec<Piece>,
    pub len_s: f64,
}

impl Window {
    /// Whether a span of call time reaches into any of the window's pieces.
    pub fn overlaps(&self, start_s: f64, end_s: f64) -> bool {
        self.pieces.iter().any(|p| p.overlaps(start_s, end_s))
    }

    /// The piece a window time falls in, or the nearest one for a time in a gap (Whisper's
    /// token times drift by a few hundred ms, often into the silence between pieces).
    pub fn piece_at(&self, window_s: f64) -> usize {
        let distance =
            |p: &Piece| (p.window_start_s - window_s).max(window_s - (p.window_start_s + p.len_s())).max(0.0);
        (0..self.pieces.len())
            .min_by(|&a, &b| distance(&self.pieces[a]).total_cmp(&distance(&self.pieces[b])))
            .unwrap_or(0)
    }

    /// Map a window time to call time, clamped into its piece.
    pub fn to_call_time(&self, window_s: f64) -> f64 {
        let p = &self.pieces[self.piece_at(window_s)];
        p.call_start_s + (window_s - p.window_start_s).clamp(0.0, p.len_s())
    }

    /// Copy the window's audio out of a 16 kHz channel.
    pub fn gather(&self, samples_16k: &[f32]) -> Vec<f32> {
        let at = |s: f64| ((s * 16_000.0).round() as usize).min(samples_16k.len());
        let mut out = vec![0.0f32; at(self.len_s).max((self.len_s * 16_000.0).round() as usize)];
        for p in &self.pieces {
            let src = &samples_16k[at(p.call_start_s)..at(p.call_end_s)];
            let dst = (p.window_start_s * 16_000.0).round() as usize;
            let n = src.len().min(out.len().saturating_sub(dst));
            out[dst..dst + n].copy_from_slice(&src[..n]);
        }
        out
    }
}

/// Pad and merge speech intervals into pieces (call time).
fn pieces(intervals: &[SpeechInterval], pad_s: f64, length_s: f64) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for iv in intervals {
        let (start, end) = ((iv.start_s - pad_s).max(0.0), (iv.end_s + pad_s).min(length_s));
        match out.last_mut() {
            Some(p) if start <= p.call_end_s => {
                p.call_end_s = p.call_end_s.max(end);
                p.speech_end_s = p.speech_end_s.max(iv.end_s);
            }
            _ => out.push(Piece {
                call_start_s: start,
                call_end_s: end,
                speech_start_s: iv.start_s,
                speech_end_s: iv.end_s,
                window_start_s: 0.0,
            }),
        }
    }
    out
}

/// Pack speech into windows. A piece longer than `max_window_s` is cut into several.
pub fn plan_windows(
    intervals: &[SpeechInterval],
    pad_s: f64,
    gap_s: f64,
    max_window_s: f64,
    length_s: f64,
) -> Vec<Window> {
    let mut queue: Vec<Piece> = Vec::new();
    for p in pieces(intervals, pad_s, length_s) {
        let mut start = p.call_start_s;
        while p.call_end_s - start > max_window_s {
            let end = start + max_window_s;
            queue.push(Piece {
                call_start_s: start,
                call_end_s: end,
                speech_start_s: p.speech_start_s.max(start),
                speech_end_s: p.speech_end_s.min(end),
                ..p
            });
            start = end;
        }
        // A cut can fall in the padding after the speech: what is left then holds no speech.
        if start < p.speech_end_s {
            queue.push(Piece { call_start_s: start, speech_start_s: p.speech_start_s.max(start), ..p });
        }
    }
    pack(queue, gap_s, max_window_s)
}

/// Lay pieces end to end, `gap_s` apart, into windows of at most `max_window_s`, in order.
pub fn pack(pieces: impl IntoIterator<Item = Piece>, gap_s: f64, max_window_s: f64) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    for mut piece in pieces {
        let fits = windows.last().is_some_and(|w| w.len_s + gap_s + piece.len_s() <= max_window_s);
        if !fits {
            windows.push(Window::default());
        }
        let w = windows.last_mut().expect("pushed above");
        piece.window_start_s = if w.pieces.is_empty() { 0.0 } else { w.len_s + gap_s };
        w.len_s = piece.window_start_s + piece.len_s();
        w.pieces.push(piece);
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
    fn speech_is_packed_densely_and_maps_back_exactly() {
        let ws = plan_windows(&[iv(1.0, 3.0), iv(10.0, 14.0), iv(14.3, 15.0), iv(40.0, 41.0)], 0.2, 0.5, 28.0, 60.0);
        assert_eq!(ws.len(), 1);
        let w = &ws[0];
        // [0.8, 3.2] -> 0..2.4; [9.8, 15.2] (merged: padded neighbours touch) -> 2.9..8.3; [39.8, 41.2] -> 8.8..10.2
        assert_eq!(w.pieces.len(), 3);
        assert!((w.len_s - 10.2).abs() < 1e-9);
        assert!((w.to_call_time(1.0) - 1.8).abs() < 1e-9);
        assert!((w.to_call_time(3.0) - 9.9).abs() < 1e-9);
        assert!((w.to_call_time(9.0) - 40.0).abs() < 1e-9);
        // A time in a gap belongs to the nearer piece, clamped to its edge.
        assert!((w.to_call_time(2.6) - 3.2).abs() < 1e-9);
        assert!((w.to_call_time(2.8) - 9.8).abs() < 1e-9);
        assert_eq!((w.pieces[1].speech_start_s, w.pieces[1].speech_end_s), (10.0, 15.0));
    }

    #[test]
    fn windows_fill_up_to_the_limit_and_long_speech_is_cut() {
        let ws = plan_windows(&[iv(0.0, 20.0), iv(30.0, 40.0), iv(50.0, 110.0)], 0.0, 0.5, 28.0, 120.0);
        let lens: Vec<f64> = ws.iter().map(|w| w.len_s).collect();
        // 20 | 10 | 28 + 28 + 4 (the 60 s interval cut at the window limit); order is kept.
        assert_eq!(lens, vec![20.0, 10.0, 28.0, 28.0, 4.0]);
        assert!(ws.iter().all(|w| w.len_s <= 28.0 + 1e-9));
        let total: f64 = ws.iter().flat_map(|w| &w.pieces).map(|p| p.len_s()).sum();
        assert!((total - 90.0).abs() < 1e-9, "all speech kept once: {total}");
        assert!(plan_windows(&[], 0.2, 0.5, 28.0, 10.0).is_empty());
    }

    /// Found on a sweep call: a cut falling in the padding after the speech left a piece
    /// whose speech started after it ended, and mapping its tokens panicked.
    #[test]
    fn a_cut_in_the_padding_after_speech_leaves_no_piece_without_speech() {
        // Padded to [0.0, 56.2]; cut at 28 and 56, after the speech ended at 55.9.
        let ws = plan_windows(&[iv(0.3, 55.9)], 0.3, 0.5, 28.0, 60.0);
        let pieces: Vec<&Piece> = ws.iter().flat_map(|w| &w.pieces).collect();
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        for p in &pieces {
            assert!(p.call_start_s <= p.speech_start_s && p.speech_start_s <= p.speech_end_s, "{p:?}");
            assert!(p.speech_end_s <= p.call_end_s, "{p:?}");
        }
        assert_eq!((pieces[0].speech_start_s, pieces[0].speech_end_s), (0.3, 28.0));
        assert_eq!((pieces[1].speech_start_s, pieces[1].speech_end_s), (28.0, 55.9));
        // A cut inside the speech keeps the remainder.
        let ws = plan_windows(&[iv(0.3, 56.1)], 0.3, 0.5, 28.0, 60.0);
        let last = *ws.last().unwrap().pieces.last().unwrap();
        assert_eq!((last.call_start_s, last.speech_start_s, last.speech_end_s), (56.0, 56.0, 56.1));
    }

    #[test]
    fn gather_copies_each_piece_to_its_place() {
        let samples: Vec<f32> = (0..16_000 * 5).map(|i| (i / 16_000) as f32).collect();
        let ws = plan_windows(&[iv(1.0, 2.0), iv(3.0, 4.0)], 0.0, 0.5, 28.0, 5.0);
        let audio = ws[0].gather(&samples);
        assert_eq!(audio.len(), 16_000 * 5 / 2);
        assert_eq!(audio[100], 1.0);
        assert_eq!(audio[16_000 + 100], 0.0); // the gap
        assert_eq!(audio[24_000 + 100], 3.0);
    }
}
