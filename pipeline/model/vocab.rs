//! Whisper's vocabulary: CTranslate2 token strings -> raw token bytes for a GGML file.
//!
//! In: `vocabulary.txt` (one token a line) or `vocabulary.json` (a list). Tokens are GPT-2
//! byte-level BPE strings, where every byte is drawn as a printable code point; out: the raw
//! bytes of the regular tokens, i.e. everything before `<|endoftext|>` (whisper.cpp rebuilds
//! the special and timestamp tokens itself from `n_vocab`).

use std::collections::HashMap;

use super::ConvertError;

pub const END_OF_TEXT: &str = "<|endoftext|>";

/// GPT-2's reversible byte <-> printable char table, inverted (char -> byte).
fn unicode_to_byte() -> HashMap<char, u8> {
    let printable =
        |b: u32| (b'!' as u32..=b'~' as u32).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut extra = 0u32;
    (0u32..256)
        .map(|b| {
            let ch = if printable(b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            (char::from_u32(ch).expect("valid code point"), b as u8)
        })
        .collect()
}

/// Parse token strings from a vocabulary file's text, by its extension's format.
pub fn parse_tokens(text: &str, is_json: bool) -> Result<Vec<String>, ConvertError> {
    if is_json {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| ConvertError::Malformed(format!("vocabulary.json is not a list of strings: {e}")))
    } else {
        Ok(text.lines().map(str::to_owned).collect())
    }
}

/// The regular tokens' raw bytes, in id order, up to (excluding) `<|endoftext|>`.
pub fn regular_token_bytes(tokens: &[String]) -> Result<Vec<Vec<u8>>, ConvertError> {
    let eot = tokens
        .iter()
        .position(|t| t == END_OF_TEXT)
        .ok_or_else(|| ConvertError::Malformed(format!("vocabulary has no {END_OF_TEXT} token")))?;
    let table = unicode_to_byte();
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(id, token)| {
            token
                .chars()
                .map(|c| table.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| ConvertError::Malformed(format!("token {id} {token:?} is not byte-level BPE")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokens_decode_to_utf8() {
        // "Ġthe" is " the"; "ä½ł" is the UTF-8 bytes of 你.
        let tokens: Vec<String> =
            ["!", "Ġthe", "ä½ł", "", END_OF_TEXT, "<|startoftranscript|>"].map(String::from).to_vec();
        let bytes = regular_token_bytes(&tokens).unwrap();
        assert_eq!(bytes.len(), 4);
        assert_eq!(bytes[1], b" the");
        assert_eq!(std::str::from_utf8(&bytes[2]).unwrap(), "你");
        assert!(bytes[3].is_empty());
    }

    #[test]
    fn table_is_a_bijection_over_all_bytes() {
        let table = unicode_to_byte();
        let mut seen: Vec<u8> = table.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn missing_end_of_text_and_foreign_chars_are_refused() {
        assert!(regular_token_bytes(&["a".into()]).is_err());
        assert!(regular_token_bytes(&["你".into(), END_OF_TEXT.into()]).is_err());
        assert_eq!(parse_tokens("[\"a\",\"b\"]", true).unwrap(), vec!["a", "b"]);
        assert!(parse_tokens("{}", true).is_err());
    }
}
