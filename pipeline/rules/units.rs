//! Text -> comparable units for phrase matching.
//!
//! Chinese is compared character by character, and by sound: each Han character becomes a
//! unit carrying its tone-less pinyin syllable (from the `pinyin` crate), so homophones that
//! recognition confuses ("不关" / "不管") sound alike. Latin words and numbers are one unit
//! each. Before that, text is normalised: Simplified script, full-width folded, punctuation
//! and spaces dropped, case folded, and Chinese numerals written as Arabic digits so "五点"
//! and "5点" compare equal.
//!
//! Normalisation runs over a whole utterance, not token by token: Whisper splits words into
//! sub-word tokens (" wait" + "ing") and numbers across tokens ("三百" + "零五"), and each
//! unit remembers the first and last token it came from so a hit still has the words' times.

use pinyin::ToPinyin;

use crate::textnorm::{fold_width, is_han, to_simplified};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The normalised character or word.
    pub text: String,
    /// How it sounds: tone-less pinyin for Han characters, else the text itself.
    pub sound: String,
    /// The source tokens it was read from (indices, inclusive), for timestamps.
    pub first_token: usize,
    pub last_token: usize,
}

/// A normalised character and the token range it came from.
#[derive(Debug, Clone, Copy)]
struct Traced {
    c: char,
    first: usize,
    last: usize,
}

/// A Chinese digit, including the phone-number readings 幺 (1) and 两 (2).
fn digit(c: char) -> Option<u32> {
    match c {
        '〇' => Some(0),
        '幺' => Some(1),
        '两' => Some(2),
        _ => "零一二三四五六七八九".chars().position(|d| d == c).map(|p| p as u32),
    }
}

fn scale(c: char) -> Option<u32> {
    match c {
        '十' => Some(10),
        '百' => Some(100),
        '千' => Some(1000),
        _ => None,
    }
}

/// The value of a run of Chinese numerals: positional ("三百零五" -> "305") when it has a
/// scale character, else digit by digit as phone numbers are read ("三零五" -> "305").
fn numeral_value(run: &[char]) -> String {
    if !run.iter().any(|&c| scale(c).is_some()) {
        return run.iter().map(|&c| char::from_digit(digit(c).unwrap_or(0), 10).unwrap_or('0')).collect();
    }
    let (mut total, mut pending) = (0u32, 0u32);
    for &c in run {
        match scale(c) {
            Some(scale) => {
                total += pending.max(1) * scale;
                pending = 0;
            }
            None => pending = digit(c).unwrap_or(0),
        }
    }
    (total + pending).to_string()
}

/// Rewrite runs of Chinese numerals as Arabic digits; every digit of a run traces back to
/// the run's whole token range.
fn arabic_numerals_traced(text: &[Traced]) -> Vec<Traced> {
    let is_numeral = |c: char| digit(c).is_some() || scale(c).is_some();
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if !is_numeral(text[i].c) {
            out.push(text[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_numeral(text[i].c) {
            i += 1;
        }
        let run: Vec<char> = text[start..i].iter().map(|t| t.c).collect();
        let (first, last) = (text[start].first, text[i - 1].last);
        out.extend(numeral_value(&run).chars().map(|c| Traced { c, first, last }));
    }
    out
}

/// "十五" -> "15", "二十" -> "20", "一二线" -> "12线", "三百零五" -> "305".
pub fn arabic_numerals(text: &str) -> String {
    let traced: Vec<Traced> = text.chars().map(|c| Traced { c, first: 0, last: 0 }).collect();
    arabic_numerals_traced(&traced).iter().map(|t| t.c).collect()
}

/// Units of an utterance given as its tokens' texts; unit token indices start at
/// `first_token`.
pub fn utterance_units<'a>(tokens: impl IntoIterator<Item = &'a str>, first_token: usize) -> Vec<Unit> {
    let mut traced = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let index = first_token + i;
        let normal = to_simplified(token).chars().map(fold_width).flat_map(char::to_lowercase).collect::<Vec<_>>();
        traced.extend(normal.into_iter().map(|c| Traced { c, first: index, last: index }));
    }
    let mut out = Vec::new();
    let mut word: Option<Unit> = None;
    let flush = |word: &mut Option<Unit>, out: &mut Vec<Unit>| out.extend(word.take());
    for t in arabic_numerals_traced(&traced) {
        if is_han(t.c) {
            flush(&mut word, &mut out);
            let sound = t.c.to_pinyin().map_or_else(|| t.c.to_string(), |p| p.plain().to_string());
            out.push(Unit { text: t.c.to_string(), sound, first_token: t.first, last_token: t.last });
        } else if t.c.is_alphanumeric() || t.c == '\'' {
            let w = word.get_or_insert_with(|| Unit {
                text: String::new(),
                sound: String::new(),
                first_token: t.first,
                last_token: t.last,
            });
            w.text.push(t.c);
            w.sound.push(t.c);
            w.last_token = w.last_token.max(t.last);
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Units of one piece of text (a pattern, or an utterance without token times).
pub fn units(text: &str) -> Vec<Unit> {
    utterance_units([text], 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(units: &[Unit]) -> Vec<&str> {
        units.iter().map(|u| u.text.as_str()).collect()
    }

    #[test]
    fn numerals_become_comparable() {
        assert_eq!(arabic_numerals("十五"), "15");
        assert_eq!(arabic_numerals("二十"), "20");
        assert_eq!(arabic_numerals("一二线城市"), "12线城市");
        assert_eq!(arabic_numerals("三百零五元"), "305元");
        assert_eq!(arabic_numerals("十"), "10");
        assert_eq!(arabic_numerals("幺三八"), "138");
        assert_eq!(arabic_numerals("两百"), "200");
    }

    #[test]
    fn chinese_units_carry_toneless_pinyin_and_words_stay_whole() {
        let u = utterance_units(["不關我的事，OK？"], 3);
        let sounds: Vec<&str> = u.iter().map(|u| u.sound.as_str()).collect();
        assert_eq!(sounds, vec!["bu", "guan", "wo", "de", "shi", "ok"]);
        assert_eq!(u[1].text, "关");
        assert!(u.iter().all(|u| (u.first_token, u.last_token) == (3, 3)));
        assert_eq!(texts(&units("Thank you for calling!")), vec!["thank", "you", "for", "calling"]);
        assert_eq!(units("五点")[0].text, "5");
    }

    #[test]
    fn words_and_numbers_split_across_tokens_are_read_whole() {
        // Sub-word tokens join into one word that spans them.
        let u = utterance_units([" thank", " you", " for", " wait", "ing"], 10);
        assert_eq!(texts(&u), vec!["thank", "you", "for", "waiting"]);
        assert_eq!((u[3].first_token, u[3].last_token), (13, 14));
        // A number split across tokens is one value, in every reading.
        let split = utterance_units(["退款", "三百", "零五", "元"], 0);
        assert_eq!(texts(&split), vec!["退", "款", "305", "元"]);
        assert_eq!((split[2].first_token, split[2].last_token), (1, 2));
        for reading in [&["三零五"][..], &["3", "05"], &["305"], &["三", "零", "五"]] {
            assert_eq!(texts(&utterance_units(reading.iter().copied(), 0)), vec!["305"], "{reading:?}");
        }
        // Separate words stay separate even when their tokens touch a number.
        assert_eq!(texts(&utterance_units([" order", " 30", "5", " please"], 0)), vec!["order", "305", "please"]);
    }
}
