//! Text normalisation shared by transcription, phrase rules and accuracy scoring.
//!
//! In: text as Whisper writes it (Traditional or Simplified Chinese, full-width forms,
//! punctuation, mixed case). Out: Simplified text, or a comparison key with punctuation and
//! spaces removed, full-width folded to half-width and case folded; plus CER / WER.

/// Traditional -> Simplified Chinese (a no-op on other scripts).
pub fn to_simplified(text: &str) -> String {
    zhconv::zhconv(text, zhconv::Variant::ZhHans)
}

/// Fold full-width ASCII forms and the ideographic space to their half-width forms.
pub fn fold_width(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Comparison key: Simplified, half-width, lower-case, letters/digits/ideographs only.
pub fn comparison_key(text: &str) -> String {
    to_simplified(text).chars().map(fold_width).filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Words for WER: lower-case, punctuation stripped (apostrophes kept inside words).
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .map(fold_width)
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Character error rate of `hypothesis` against `reference`, on comparison keys.
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<char> = comparison_key(reference).chars().collect();
    let h: Vec<char> = comparison_key(hypothesis).chars().collect();
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

/// Word error rate of `hypothesis` against `reference`.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let r = words(reference);
    let h = words(hypothesis);
    edit_distance(&r, &h) as f64 / r.len().max(1) as f64
}

/// True for CJK ideographs (the unit of Chinese speaking rate and CER).
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_and_full_width_fold_to_one_key() {
        assert_eq!(to_simplified("廣州市房地產"), "广州市房地产");
        assert_eq!(comparison_key("請稍等，ＯＫ！ 謝謝"), "请稍等ok谢谢");
        assert_eq!(comparison_key("Hello, World."), "helloworld");
    }

    #[test]
    fn error_rates() {
        assert_eq!(cer("广州市房地产", "廣州市房地產"), 0.0);
        assert!((cer("甚至出现交易", "甚至出线交易") - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(wer("Ask not, what your country", "ask not what your country"), 0.0);
        assert!((wer("a b c d", "a x c") - 0.5).abs() < 1e-9);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
    }
}
