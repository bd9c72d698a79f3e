//! Finding a phrase in a stream of units, exactly or approximately.
//!
//! Exact: the phrase's characters/words appear contiguously. Fuzzy: the best approximate
//! occurrence by sound (semi-global edit distance: the phrase must be matched whole, the
//! stream may be entered and left anywhere), accepted when it needs at most
//! `floor(len * max_edit_ratio)` unit edits. Equal sounds cost nothing, so homophones match
//! with similarity 1.0 but are still reported as `fuzzy` because the characters differ.

use super::units::Unit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    Exact,
    Fuzzy,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Exact => "exact",
            MatchType::Fuzzy => "fuzzy",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Unit range in the stream.
    pub start: usize,
    pub end: usize,
    pub match_type: MatchType,
    /// 1 - edits / phrase length.
    pub similarity: f64,
}

/// Every exact occurrence of `phrase` in `stream` (non-overlapping, left to right).
pub fn find_exact(stream: &[Unit], phrase: &[Unit]) -> Vec<Match> {
    let n = phrase.len();
    let mut out = Vec::new();
    if n == 0 || stream.len() < n {
        return out;
    }
    let mut i = 0;
    while i + n <= stream.len() {
        if stream[i..i + n].iter().zip(phrase).all(|(a, b)| a.text == b.text) {
            out.push(Match { start: i, end: i + n, match_type: MatchType::Exact, similarity: 1.0 });
            i += n;
        } else {
            i += 1;
        }
    }
    out
}

/// Best approximate occurrences by sound, excluding ranges already matched exactly.
pub fn find_fuzzy(stream: &[Unit], phrase: &[Unit], max_edit_ratio: f64, taken: &[Match]) -> Vec<Match> {
    let n = phrase.len();
    let max_edits = (n as f64 * max_edit_ratio).floor() as usize;
    if n == 0 || stream.is_empty() {
        return vec![];
    }
    // cost[i][j]: edits to align phrase[..i] ending at stream position j; start[i][j]: where it began.
    let m = stream.len();
    let mut prev_cost: Vec<usize> = vec![0; m + 1];
    let mut prev_start: Vec<usize> = (0..=m).collect();
    for (i, p) in phrase.iter().enumerate() {
        let mut cost = vec![i + 1; m + 1];
        let mut start = vec![0; m + 1];
        start[0] = 0;
        for j in 1..=m {
            let substitute = prev_cost[j - 1] + usize::from(stream[j - 1].sound != p.sound);
            let skip_phrase = prev_cost[j] + 1;
            let skip_stream = cost[j - 1] + 1;
            (cost[j], start[j]) = if substitute <= skip_phrase && substitute <= skip_stream {
                (substitute, prev_start[j - 1])
            } else if skip_phrase <= skip_stream {
                (skip_phrase, prev_start[j])
            } else {
                (skip_stream, start[j - 1])
            };
        }
        prev_cost = cost;
        prev_start = start;
    }
    // Local minima at or under the budget, best first, non-overlapping.
    let mut candidates: Vec<(usize, usize, usize)> =
        (1..=m).filter(|&j| prev_cost[j] <= max_edits).map(|j| (prev_cost[j], prev_start[j], j)).collect();
    candidates.sort();
    let mut out: Vec<Match> = Vec::new();
    for (edits, start, end) in candidates {
        let overlaps = |s: usize, e: usize| s < end && start < e;
        if start >= end || out.iter().chain(taken).any(|o| overlaps(o.start, o.end)) {
            continue;
        }
        let identical_text = end - start == n && stream[start..end].iter().zip(phrase).all(|(a, b)| a.text == b.text);
        out.push(Match {
            start,
            end,
            match_type: if identical_text { MatchType::Exact } else { MatchType::Fuzzy },
            similarity: 1.0 - edits as f64 / n as f64,
        });
    }
    out.sort_by_key(|m| m.start);
    out
}

#[cfg(test)]
mod tests {
    use super::super::units::units;
    use super::*;

    fn stream(text: &str) -> Vec<Unit> {
        units(text)
    }

    #[test]
    fn exact_hits_are_found_in_order() {
        let s = stream("您好请稍等，我查一下，请稍等");
        let hits = find_exact(&s, &stream("请稍等"));
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].start, hits[0].end), (2, 5));
    }

    #[test]
    fn homophones_hit_by_sound() {
        let s = stream("这个不管我的事你去问别人");
        assert!(find_exact(&s, &stream("不关我的事")).is_empty());
        let hits = find_fuzzy(&s, &stream("不关我的事"), 0.2, &[]);
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].start, hits[0].end, hits[0].match_type, hits[0].similarity), (2, 7, MatchType::Fuzzy, 1.0));
    }

    #[test]
    fn one_wrong_syllable_is_tolerated_in_a_long_phrase_only() {
        // 谢谢您的耐心等待 (8 syllables, 1 edit allowed): 等待 -> 等下
        let s = stream("好的谢谢您的耐心等下");
        let hit = find_fuzzy(&s, &stream("谢谢您的耐心等待"), 0.2, &[]);
        assert_eq!(hit.len(), 1);
        assert!((hit[0].similarity - 7.0 / 8.0).abs() < 1e-9);
        // 请稍等 (3 syllables, 0 edits allowed): 请稍后 must not match.
        assert!(find_fuzzy(&stream("请稍后再拨"), &stream("请稍等"), 0.2, &[]).is_empty());
    }

    #[test]
    fn unrelated_phrases_of_the_same_length_miss() {
        for unrelated in ["今天天气很好", "我想办理退款", "你们几点下班"] {
            assert!(find_fuzzy(&stream(unrelated), &stream("不关我的事"), 0.2, &[]).is_empty(), "{unrelated}");
        }
        assert!(find_fuzzy(&stream("please hold the line"), &stream("thank you for waiting"), 0.25, &[]).is_empty());
    }

    #[test]
    fn english_words_match_with_one_recognition_error() {
        let s = stream("okay thank you for waving I can see an outage");
        let hit = find_fuzzy(&s, &stream("thank you for waiting"), 0.25, &[]);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].similarity, 0.75);
    }
}
