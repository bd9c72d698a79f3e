//! Numbers as people say them and Whisper writes them: text -> digit strings with the
//! characters they came from, and the shape test that says which digit strings are personal.
//!
//! A digit can be written as `7`, `７`, `七`, `柒`, `seven`; `幺` and `两` are the spoken
//! 1 and 2 of Chinese phone numbers; "double five" is 55 and "twenty one" is 21. Digits
//! separated only by spaces, punctuation, line breaks or fillers (嗯, "uh") belong to one
//! run: that is how a number read digit by digit comes out of Whisper ("138，1234，5678",
//! "five five five, one two one two"). Quantity words (十, 百, 万, "and") end a run, so
//! "三百零五元" and "two hundred and five" stay short, ordinary numbers.

use std::ops::Range;

use super::PiiType;

/// One number-like item: its digits and the stream characters it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub digits: String,
    pub chars: Range<usize>,
}

/// Digits separated by nothing but spaces, punctuation and fillers. `groups` are the
/// stretches between separators: the places a run may be cut into two numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub groups: Vec<Item>,
}

fn han_digit(c: char) -> Option<u8> {
    Some(match c {
        '零' | '〇' | '○' => 0,
        '一' | '幺' | '壹' => 1,
        '二' | '两' | '贰' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

fn ascii_digit(c: char) -> Option<u8> {
    let c = crate::textnorm::fold_width(c);
    c.is_ascii_digit().then(|| c as u8 - b'0')
}

const UNITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
const TEENS: [&str; 10] =
    ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// Fillers inside a number read aloud: they neither end the run nor add digits.
fn is_filler_word(w: &str) -> bool {
    matches!(w, "uh" | "um" | "er" | "erm" | "ah" | "hmm")
}

fn is_filler_han(c: char) -> bool {
    matches!(c, '嗯' | '呃' | '啊' | '额' | '哦' | '唔' | '诶' | '欸')
}

/// What a lexeme of the text is to a number reader.
#[derive(Debug, Clone, PartialEq)]
enum Lexeme {
    Digits(String),
    /// "double" / "triple": the next single digit counts this many times.
    Repeat(usize),
    /// "twenty".."ninety": a unit word may follow ("twenty one" = 21).
    Tens(u8),
    /// "hundred" / "thousand" right after a digit ("eight hundred" numbers).
    Zeros(usize),
    /// "for": Whisper's spelling of "four" inside a number; a digit only right before one.
    WeakFour,
    /// The check character of a resident ID number.
    X,
    Separator,
    Break,
}

/// Split text into lexemes with their character ranges.
fn lexemes(chars: &[char]) -> Vec<(Lexeme, Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '\'' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == '\'') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_ascii_lowercase();
            let lexeme = if let Some(d) = UNITS.iter().position(|u| *u == word) {
                Lexeme::Digits(d.to_string())
            } else if word == "oh" || word == "o" {
                Lexeme::Digits("0".into())
            } else if let Some(t) = TEENS.iter().position(|u| *u == word) {
                Lexeme::Digits((10 + t).to_string())
            } else if let Some(t) = TENS.iter().position(|u| *u == word) {
                Lexeme::Tens(t as u8 + 2)
            } else if word == "double" || word == "triple" {
                Lexeme::Repeat(if word == "double" { 2 } else { 3 })
            } else if word == "hundred" || word == "thousand" {
                Lexeme::Zeros(if word == "hundred" { 2 } else { 3 })
            } else if word == "for" {
                Lexeme::WeakFour
            } else if word == "x" {
                Lexeme::X
            } else if is_filler_word(&word) {
                Lexeme::Separator
            } else {
                Lexeme::Break
            };
            out.push((lexeme, start..i));
            continue;
        }
        let lexeme = if let Some(d) = ascii_digit(c).or_else(|| han_digit(c)) {
            Lexeme::Digits(d.to_string())
        } else if c == 'X' || c == 'x' || c == 'Ｘ' || c == '叉' {
            Lexeme::X
        } else if matches!(c, '@' | ':' | '/' | '%' | '：' | '％' | '$' | '¥' | '￥' | '#') {
            // Never inside a phone or card number; they make times, dates, money, percentages.
            Lexeme::Break
        } else if c.is_whitespace() || is_filler_han(c) || (!c.is_alphanumeric() && !crate::textnorm::is_han(c)) {
            Lexeme::Separator
        } else {
            Lexeme::Break
        };
        out.push((lexeme, i..i + 1));
        i += 1;
    }
    out
}

/// Every run of digits in `chars` (one speaker's words in order).
pub fn runs(chars: &[char]) -> Vec<Run> {
    let lex = lexemes(chars);
    let mut runs = Vec::new();
    let mut groups: Vec<Item> = Vec::new();
    // A separator was seen since the last digit: the next digit starts a new group.
    let mut separated = true;
    // "double" / "triple": (count, where the word starts: the digit's item starts there).
    let mut repeat: (usize, Option<usize>) = (1, None);
    let close = |groups: &mut Vec<Item>, runs: &mut Vec<Run>| {
        if !groups.is_empty() {
            runs.push(Run { groups: std::mem::take(groups) });
        }
    };
    let push = |groups: &mut Vec<Item>, separated: &mut bool, digits: String, range: Range<usize>| {
        match groups.last_mut() {
            Some(last) if !*separated => {
                last.digits.push_str(&digits);
                last.chars.end = range.end;
            }
            _ => groups.push(Item { digits, chars: range }),
        }
        *separated = false;
    };
    let mut k = 0;
    while k < lex.len() {
        let (lexeme, range) = lex[k].clone();
        match lexeme {
            Lexeme::Digits(d) => {
                let (count, start) = std::mem::replace(&mut repeat, (1, None));
                let digits = if d.len() == 1 { d.repeat(count) } else { d };
                push(&mut groups, &mut separated, digits, start.unwrap_or(range.start)..range.end);
            }
            Lexeme::Tens(t) => {
                // "twenty one", "twenty-one": one two-digit number.
                let mut next = k + 1;
                while next < lex.len() && lex[next].0 == Lexeme::Separator && next - k <= 2 {
                    next += 1;
                }
                let unit = match lex.get(next) {
                    Some((Lexeme::Digits(d), r)) if d.len() == 1 && d != "0" && next - k <= 2 => {
                        Some((d.clone(), r.end))
                    }
                    _ => None,
                };
                let (digits, end) = match unit {
                    Some((d, end)) => {
                        k = next;
                        (format!("{t}{d}"), end)
                    }
                    None => (format!("{t}0"), range.end),
                };
                push(&mut groups, &mut separated, digits, range.start..end);
            }
            Lexeme::Zeros(n) if !groups.is_empty() => push(&mut groups, &mut separated, "0".repeat(n), range),
            Lexeme::Repeat(n) => repeat = (n, Some(range.start)),
            Lexeme::WeakFour
                if lex[k + 1..]
                    .iter()
                    .find(|(l, _)| *l != Lexeme::Separator)
                    .is_some_and(|(l, _)| matches!(l, Lexeme::Digits(_) | Lexeme::Tens(_) | Lexeme::Repeat(_))) =>
            {
                push(&mut groups, &mut separated, "4".into(), range)
            }
            Lexeme::X if groups.iter().map(|g| g.digits.len()).sum::<usize>() == 17 => {
                separated = false;
                push(&mut groups, &mut separated, "X".into(), range);
                close(&mut groups, &mut runs);
                separated = true;
            }
            Lexeme::Separator => separated = true,
            Lexeme::Zeros(_) | Lexeme::X | Lexeme::WeakFour | Lexeme::Break => {
                close(&mut groups, &mut runs);
                separated = true;
                repeat = (1, None);
            }
        }
        k += 1;
    }
    close(&mut groups, &mut runs);
    runs
}

/// The check character of an 18-character resident ID number (GB 11643).
pub fn id_check_char(first17: &[u8]) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(&d, w)| (d - b'0') as u32 * w).sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A birth date (YYYYMMDD) where an ID number has one: years 1900-2099.
fn plausible_birth_date(s: &str) -> bool {
    let (Ok(year), Ok(month), Ok(day)) = (s[0..4].parse::<u32>(), s[4..6].parse::<u32>(), s[6..8].parse::<u32>())
    else {
        return false;
    };
    (1900..=2099).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// Which personal number `digits` is, by shape alone. `name`: what the words just before
/// called it (电话, "card number"); a phone's name makes 7-8 digits a local phone number.
///
/// The shapes are deliberately wider than the checksums: Whisper gets a digit wrong now and
/// then, and a card number with one wrong digit fails Luhn but is still a card number.
pub fn classify(digits: &str, name: Option<PiiType>) -> Option<PiiType> {
    let n = digits.len();
    if digits.ends_with('X') {
        return (n == 18).then_some(PiiType::Id);
    }
    let starts = |p: &str| digits.starts_with(p);
    match n {
        7 | 8 => (name == Some(PiiType::Phone)).then_some(PiiType::Phone),
        // Mainland: 400/800 numbers and landlines with a 3-digit area code; North America.
        10 => Some(PiiType::Phone),
        // Mainland mobiles (1[3-9]...), landlines with area codes, +1 North American numbers.
        11 if starts("1") || starts("0") => Some(PiiType::Phone),
        12 if starts("0") => Some(PiiType::Phone),
        13 if starts("861") => Some(PiiType::Phone),
        15 if plausible_birth_date(&format!("19{}", &digits[6..12])) && !luhn_valid(digits) => Some(PiiType::Id),
        18 if id_check_char(&digits.as_bytes()[..17]) == digits.as_bytes()[17] as char => Some(PiiType::Id),
        18 if !luhn_valid(digits) && plausible_birth_date(&digits[6..14]) => Some(PiiType::Id),
        13..=19 => Some(PiiType::Card),
        _ => None,
    }
}

/// A run cut into the numbers it holds, front to back: the groups each part spans, and its
/// type where it has a known shape (`None`: digits of no known shape). Two numbers read one
/// after the other ("13812345678, 13912345678") make one run; the cut that covers the most
/// digits with known shapes wins, and fewer pieces break ties. `name`: what the words
/// before the run called it (it makes 7-8 digits a phone number).
pub fn split(run: &Run, name: Option<PiiType>) -> Vec<(Range<usize>, Option<PiiType>)> {
    const MAX_GROUPS_PER_NUMBER: usize = 24;
    let g = &run.groups;
    // best[i]: (digits covered, -pieces) over groups[..i], and the last part of the cut that
    // got it: where it starts and its type.
    type Best = ((usize, isize), Option<(usize, Option<PiiType>)>);
    let mut best: Vec<Best> = vec![((0, 0), None); g.len() + 1];
    for i in 1..=g.len() {
        best[i] = (best[i - 1].0, Some((i - 1, None)));
        let mut digits = String::new();
        for j in (i.saturating_sub(MAX_GROUPS_PER_NUMBER)..i).rev() {
            digits.insert_str(0, &g[j].digits);
            if digits.len() > 19 {
                break;
            }
            if let Some(kind) = classify(&digits, name) {
                let score = (best[j].0 .0 + digits.len(), best[j].0 .1 - 1);
                if score > best[i].0 {
                    best[i] = (score, Some((j, Some(kind))));
                }
            }
        }
    }
    // The cut, front to back: stretches with a shape (Some) and without (None).
    let mut parts: Vec<(Range<usize>, Option<PiiType>)> = Vec::new();
    let mut i = g.len();
    while i > 0 {
        let (j, kind) = best[i].1.expect("every prefix has a cut");
        match (kind, parts.last_mut()) {
            (None, Some((r, None))) => r.start = j,
            _ => parts.push((j..i, kind)),
        }
        i = j;
    }
    parts.reverse();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_of(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        runs(&chars).iter().map(|r| r.groups.iter().map(|g| g.digits.as_str()).collect()).collect()
    }

    #[test]
    fn every_way_of_writing_a_digit_reads_the_same() {
        assert_eq!(digits_of("13812345678"), ["13812345678"]);
        assert_eq!(digits_of("１３８１２３４５６７８"), ["13812345678"]);
        assert_eq!(digits_of("幺三八，一二三四，五六七八"), ["13812345678"]);
        assert_eq!(digits_of("一三八 嗯 两三四五 六七八零"), ["13823456780"]);
        assert_eq!(digits_of("138-1234-5678。"), ["13812345678"]);
        assert_eq!(digits_of("幺三八1234五六七八"), ["13812345678"]);
        assert_eq!(digits_of("five five five, one two one two"), ["5551212"]);
        assert_eq!(digits_of("double five, triple oh, twenty-one"), ["5500021"]);
        assert_eq!(digits_of("one eight hundred, five five five"), ["1800555"]);
        assert_eq!(digits_of("for 539 1488"), ["45391488"]);
        assert_eq!(digits_of("thanks for calling, 2 items"), ["2"]);
    }

    #[test]
    fn quantities_and_words_end_a_run() {
        assert_eq!(digits_of("三百零五元"), ["3", "05"]);
        assert_eq!(digits_of("two hundred and five dollars"), ["200", "5"]);
        assert_eq!(digits_of("一下一起"), ["1", "1"]);
        assert_eq!(digits_of("2024年3月15日"), ["2024", "3", "15"]);
        assert_eq!(digits_of("123456@qq.com"), ["123456"]);
    }

    #[test]
    fn id_numbers_keep_their_check_x() {
        let first17 = b"11010519491231002";
        assert_eq!(id_check_char(first17), 'X');
        assert_eq!(digits_of("11010519491231002X"), ["11010519491231002X"]);
        assert_eq!(digits_of("110105 19491231 002 x"), ["11010519491231002X"]);
        assert_eq!(classify("11010519491231002X", None), Some(PiiType::Id));
    }

    #[test]
    fn shapes() {
        assert!(luhn_valid("4539148803436467"));
        assert!(!luhn_valid("4539148803436468"));
        assert_eq!(classify("13812345678", None), Some(PiiType::Phone));
        assert_eq!(classify("4008123123", None), Some(PiiType::Phone));
        assert_eq!(classify("02188886666", None), Some(PiiType::Phone));
        assert_eq!(classify("88886666", None), None);
        assert_eq!(classify("88886666", Some(PiiType::Phone)), Some(PiiType::Phone));
        assert_eq!(classify("4539148803436467", None), Some(PiiType::Card));
        assert_eq!(classify("6222021234567890123", None), Some(PiiType::Card));
        assert_eq!(classify("2024", Some(PiiType::Phone)), None);
        assert_eq!(classify("35", Some(PiiType::Phone)), None);
    }

    #[test]
    fn two_numbers_in_one_run_are_cut_apart() {
        let chars: Vec<char> = "13812345678 13912345678".chars().collect();
        let run = &runs(&chars)[0];
        assert_eq!(split(run, None), vec![(0..1, Some(PiiType::Phone)), (1..2, Some(PiiType::Phone))]);
        let chars: Vec<char> = "1 3 8 1 2 3 4 5 6 7 8".chars().collect();
        assert_eq!(split(&runs(&chars)[0], None), vec![(0..11, Some(PiiType::Phone))]);
        let chars: Vec<char> = "3 5".chars().collect();
        assert_eq!(split(&runs(&chars)[0], Some(PiiType::Phone)), vec![(0..2, None)]);
    }
}
