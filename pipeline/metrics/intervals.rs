//! Interval arithmetic over sorted, non-overlapping speech intervals.

use crate::record::SpeechInterval;

pub fn total(intervals: &[SpeechInterval]) -> f64 {
    intervals.iter().map(SpeechInterval::duration_s).sum()
}

/// Union of several interval lists, sorted and merged.
pub fn union(lists: &[&[SpeechInterval]]) -> Vec<SpeechInterval> {
    let mut all: Vec<SpeechInterval> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    all.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut merged: Vec<SpeechInterval> = Vec::new();
    for iv in all {
        match merged.last_mut() {
            Some(last) if iv.start_s <= last.end_s => last.end_s = last.end_s.max(iv.end_s),
            _ => merged.push(iv),
        }
    }
    merged
}

/// Seconds covered by both lists.
pub fn intersection_total(a: &[SpeechInterval], b: &[SpeechInterval]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        sum += (a[i].end_s.min(b[j].end_s) - a[i].start_s.max(b[j].start_s)).max(0.0);
        if a[i].end_s < b[j].end_s {
            i += 1;
        } else {
            j += 1;
        }
    }
    sum
}

/// `from` without the time `taken` covers (both sorted), keeping pieces of at least `min_s`.
pub fn subtract(from: &[SpeechInterval], taken: &[SpeechInterval], min_s: f64) -> Vec<SpeechInterval> {
    let mut out = Vec::new();
    for iv in from {
        let mut start_s = iv.start_s;
        for t in taken.iter().filter(|t| t.end_s > iv.start_s && t.start_s < iv.end_s) {
            out.push(SpeechInterval { start_s, end_s: t.start_s.max(start_s) });
            start_s = start_s.max(t.end_s);
        }
        out.push(SpeechInterval { start_s, end_s: iv.end_s.max(start_s) });
    }
    out.retain(|p| p.duration_s() >= min_s && p.duration_s() > 0.0);
    out
}

/// The gaps between consecutive intervals of a merged list.
pub fn gaps(merged: &[SpeechInterval]) -> Vec<SpeechInterval> {
    merged.windows(2).map(|w| SpeechInterval { start_s: w[0].end_s, end_s: w[1].start_s }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start_s: f64, end_s: f64) -> SpeechInterval {
        SpeechInterval { start_s, end_s }
    }

    #[test]
    fn algebra() {
        let a = [iv(0.0, 2.0), iv(5.0, 8.0)];
        let b = [iv(1.0, 3.0), iv(7.0, 7.5), iv(10.0, 11.0)];
        assert_eq!(total(&a), 5.0);
        assert_eq!(intersection_total(&a, &b), 1.5);
        let u = union(&[&a, &b]);
        assert_eq!(u, vec![iv(0.0, 3.0), iv(5.0, 8.0), iv(10.0, 11.0)]);
        assert_eq!(gaps(&u), vec![iv(3.0, 5.0), iv(8.0, 10.0)]);
        assert!(gaps(&[]).is_empty());
        let minus = subtract(&u, &[iv(2.0, 6.0), iv(7.9, 10.5)], 0.2);
        assert_eq!(minus, vec![iv(0.0, 2.0), iv(6.0, 7.9), iv(10.5, 11.0)]);
        assert_eq!(subtract(&u, &[iv(2.0, 6.0), iv(7.9, 10.5)], 0.6), vec![iv(0.0, 2.0), iv(6.0, 7.9)]);
    }
}
