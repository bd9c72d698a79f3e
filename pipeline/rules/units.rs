//! Text -> comparable units for phrase matching.
//!
//! Chinese is compared character by character, and by sound: each Han character becomes a
//! unit carrying its tone-less pinyin syllable (from the `pinyin` crate), so homophones that
//! recognition confuses ("不关" / "不管") sound alike. Latin words and numbers are one unit
//! each. Before that, text is normalised: Simplified script, full-width folded, punctuation
//! and spaces dropped, case folded, and Chinese numerals written as Arabic digits so "五点"
//! and "5点" compare equal.

use pinyin::ToPinyin;

use crate::textnorm::{fold_width, is_han, to_simplified};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The normalised character or word.
    pub text: String,
    /// How it sounds: tone-less pinyin for Han characters, else the text itself.
    pub sound: String,
    /// Index of the source token (for timestamps), set by the caller.
    pub token: usize,
}

fn digit(c: char) -> Option<u32> {
    "零一二三四五六七八九".chars().position(|d| d == c).map(|p| p as u32).or(if c == '〇' { Some(0) } else { None })
}

/// Rewrite runs of Chinese numerals as Arabic digits: "十五" -> "15", "二十" -> "20",
/// "一二线" -> "12线", "三百零五" -> "305".
pub fn arabic_numerals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_numeral = |c: char| digit(c).is_some() || matches!(c, '十' | '百' | '千');
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_numeral(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_numeral(chars[i]) {
            i += 1;
        }
        let run = &chars[start..i];
        if run.iter().any(|c| matches!(c, '十' | '百' | '千')) {
            let (mut total, mut pending) = (0u32, 0u32);
            for &c in run {
                match c {
                    '十' | '百' | '千' => {
                        let scale = match c {
                            '十' => 10,
                            '百' => 100,
                            _ => 1000,
                        };
                        total += pending.max(1) * scale;
                        pending = 0;
                    }
                    d => pending = digit(d).unwrap_or(0),
                }
            }
            out.push_str(&(total + pending).to_string());
        } else {
            out.extend(run.iter().map(|&c| char::from_digit(digit(c).unwrap_or(0), 10).unwrap_or('0')));
        }
    }
    out
}

/// Units of one piece of text (one token, or a whole pattern).
pub fn units(text: &str, token: usize) -> Vec<Unit> {
    let normal: String =
        arabic_numerals(&to_simplified(text)).chars().map(fold_width).flat_map(char::to_lowercase).collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Unit>| {
        if !word.is_empty() {
            out.push(Unit { text: word.clone(), sound: word.clone(), token });
            word.clear();
        }
    };
    for c in normal.chars() {
        if is_han(c) {
            flush(&mut word, &mut out);
            let sound = c.to_pinyin().map_or_else(|| c.to_string(), |p| p.plain().to_string());
            out.push(Unit { text: c.to_string(), sound, token });
        } else if c.is_alphanumeric() || c == '\'' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerals_become_comparable() {
        assert_eq!(arabic_numerals("十五"), "15");
        assert_eq!(arabic_numerals("二十"), "20");
        assert_eq!(arabic_numerals("一二线城市"), "12线城市");
        assert_eq!(arabic_numerals("三百零五元"), "305元");
        assert_eq!(arabic_numerals("十"), "10");
    }

    #[test]
    fn chinese_units_carry_toneless_pinyin_and_words_stay_whole() {
        let u = units("不關我的事，OK？", 3);
        let sounds: Vec<&str> = u.iter().map(|u| u.sound.as_str()).collect();
        assert_eq!(sounds, vec!["bu", "guan", "wo", "de", "shi", "ok"]);
        assert_eq!(u[1].text, "关");
        assert!(u.iter().all(|u| u.token == 3));
        let en = units("Thank you for calling!", 0);
        assert_eq!(en.iter().map(|u| u.text.as_str()).collect::<Vec<_>>(), vec!["thank", "you", "for", "calling"]);
        assert_eq!(units("五点", 0)[0].text, "5");
    }
}
