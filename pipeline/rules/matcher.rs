//! Finding a phrase in a stream of units, exactly or approximately.
//!
//! Exact: the phrase's characters/words appear contiguously. Fuzzy: the best approximate
//! occurrence by sound (semi-global edit distance: the phrase must be matched whole, the
//! stream may be entered and left anywhere), accepted when it needs at most
//! `floor(len * max_edit_ratio)` unit edits (a phrase under 4 units: one near sound at most).
//! Equal sounds cost nothing, so homophones match with similarity 1.0 but are still reported
//! as `fuzzy` because the characters differ; near sounds cost half an edit.

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

/// Pinyin initials, longest first so "zh" is read before "z".
const INITIALS: [&str; 23] = [
    "zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s", "y",
    "w",
];

/// (initial, final) of a tone-less pinyin syllable; `None` for anything else (Latin words).
fn initial_final(sound: &str) -> Option<(&str, &str)> {
    if sound.is_empty() || !sound.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let initial = INITIALS.iter().find(|i| sound.starts_with(**i)).copied().unwrap_or("");
    Some((initial, &sound[initial.len()..]))
}

/// Cost of reading `heard` where the phrase has `wanted`, in half edits: 0 for the same
/// sound, 1 for a near sound (two syllables sharing their initial or their final, as
/// recognition confuses 房/佛, 介/间, 担/班), 2 otherwise.
fn substitution_cost(heard: &Unit, wanted: &Unit, near_sounds: bool) -> usize {
    if heard.sound == wanted.sound {
        return 0;
    }
    let near = near_sounds
        && match (initial_final(&heard.sound), initial_final(&wanted.sound)) {
            (Some((hi, hf)), Some((wi, wf))) => (!hi.is_empty() && hi == wi) || (!hf.is_empty() && hf == wf),
            _ => false,
        }
        && heard.text.chars().all(crate::textnorm::is_han)
        && wanted.text.chars().all(crate::textnorm::is_han);
    if near {
        1
    } else {
        2
    }
}

/// Best approximate occurrences by sound, excluding ranges already matched exactly. With
/// `near_sounds`, a near syllable costs half an edit (see [`substitution_cost`]).
pub fn find_fuzzy(
    stream: &[Unit],
    phrase: &[Unit],
    max_edit_ratio: f64,
    near_sounds: bool,
    taken: &[Match],
) -> Vec<Match> {
    let n = phrase.len();
    // Costs in half edits. A phrase under 4 units tolerates one near sound at most: one
    // whole edit turns 没办法 into 有办法.
    let budget = (2.0 * n as f64 * max_edit_ratio + 1e-9).floor() as usize;
    let max_edits = if n < 4 { budget.min(1) } else { budget };
    if n == 0 || stream.is_empty() {
        return vec![];
    }
    // cost[i][j]: edits to align phrase[..i] ending at stream position j; start[i][j]: where it began.
    let m = stream.len();
    let mut prev_cost: Vec<usize> = vec![0; m + 1];
    let mut prev_start: Vec<usize> = (0..=m).collect();
    for (i, p) in phrase.iter().enumerate() {
        let mut cost = vec![2 * (i + 1); m + 1];
        let mut start = vec![0; m + 1];
        start[0] = 0;
        for j in 1..=m {
            let substitute = prev_cost[j - 1] + substitution_cost(&stream[j - 1], p, near_sounds);
            let skip_phrase = prev_cost[j] + 2;
            let skip_stream = cost[j - 1] + 2;
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
            similarity: 1.0 - edits as f64 / (2 * n) as f64,
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
        let hits = find_fuzzy(&s, &stream("不关我的事"), 0.2, false, &[]);
        assert_eq!(hits.len(), 1);
        assert_eq!((hits[0].start, hits[0].end, hits[0].match_type, hits[0].similarity), (2, 7, MatchType::Fuzzy, 1.0));
    }

    #[test]
    fn one_wrong_syllable_is_tolerated_in_a_long_phrase_only() {
        // 谢谢您的耐心等待 (8 syllables, 1 edit allowed): 等待 -> 等下
        let s = stream("好的谢谢您的耐心等下");
        let hit = find_fuzzy(&s, &stream("谢谢您的耐心等待"), 0.2, false, &[]);
        assert_eq!(hit.len(), 1);
        assert!((hit[0].similarity - 7.0 / 8.0).abs() < 1e-9);
        // 请稍等 (3 syllables, 0 edits allowed): 请稍后 must not match.
        assert!(find_fuzzy(&stream("请稍后再拨"), &stream("请稍等"), 0.2, false, &[]).is_empty());
    }

    #[test]
    fn unrelated_phrases_of_the_same_length_miss() {
        for unrelated in ["今天天气很好", "我想办理退款", "你们几点下班"] {
            assert!(find_fuzzy(&stream(unrelated), &stream("不关我的事"), 0.2, false, &[]).is_empty(), "{unrelated}");
        }
        assert!(
            find_fuzzy(&stream("please hold the line"), &stream("thank you for waiting"), 0.25, false, &[]).is_empty()
        );
    }

    #[test]
    fn near_sounds_cost_half_an_edit() {
        // 房地产中介 heard as 佛地产中间: two near syllables (f-, j-) make one edit of five.
        let heard = stream("广州市佛地产中间协会");
        assert!(find_fuzzy(&heard, &stream("房地产中介"), 0.2, false, &[]).is_empty());
        let hit = find_fuzzy(&heard, &stream("房地产中介"), 0.2, true, &[]);
        assert_eq!(hit.len(), 1);
        assert!((hit[0].similarity - 0.8).abs() < 1e-9);
        // A syllable sharing neither initial nor final is a whole edit; so are English words.
        assert!(find_fuzzy(&stream("没有做好风头"), &stream("没有做好功课"), 0.2, true, &[]).is_empty());
        assert!(find_fuzzy(&stream("i have that"), &stream("i had that"), 0.25, true, &[]).is_empty());
        // Short phrases take one near sound at most, never a whole edit.
        assert!(find_fuzzy(&stream("有办法"), &stream("没办法"), 0.34, true, &[]).is_empty());
        assert_eq!(find_fuzzy(&stream("梅办法"), &stream("没办法"), 0.34, true, &[]).len(), 1);
        assert_eq!(initial_final("zhuang"), Some(("zh", "uang")));
        assert_eq!(initial_final("an"), Some(("", "an")));
    }

    #[test]
    fn english_words_match_with_one_recognition_error() {
        let s = stream("okay thank you for waving I can see an outage");
        let hit = find_fuzzy(&s, &stream("thank you for waiting"), 0.25, false, &[]);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].similarity, 0.75);
    }
}
