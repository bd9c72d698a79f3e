//! What each fuzz target checks on one input, shared by the libFuzzer targets
//! (tests/fuzz/fuzz_targets) and by tests/fuzz_regressions.rs, which runs every committed
//! seed and every past finding (fixtures/fuzz/<target>/) in the ordinary test suite.
#![allow(dead_code)]

/// WAV bytes -> decode (RIFF walk, PCM through hound, G.711) and in-place muting: audio or
/// a DecodeError, never a panic; muting never changes the file's length.
pub fn wav_decode(data: &[u8]) {
    if let Ok(audio) = callqa::audio::decode::decode_wav(data, 600.0) {
        assert!(audio.channels.iter().all(|c| c.len() == audio.channels[0].len()));
        assert!(audio.channels.iter().flatten().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
    let mut copy = data.to_vec();
    if callqa::privacy::mute::mute_wav(&mut copy, &[(0.0, 0.5), (1.0, 1e9)]).is_ok() {
        assert_eq!(copy.len(), data.len());
    }
}

/// CSV manifest bytes -> calls or per-row rejections.
pub fn manifest(data: &[u8]) {
    let _ = callqa::ingest::parse_manifest(data, std::path::Path::new("/nonexistent/calls.csv"));
}

/// TOML text -> a validated Config or an error; a config that parses prints as TOML that
/// parses to the same config.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = callqa::config::Config::parse(text) {
            assert_eq!(callqa::config::Config::parse(&config.to_toml()).as_ref(), Ok(&config));
        }
    }
}

/// Model file bytes -> the GGML reader, the CTranslate2 parser and the vocabulary parsers:
/// an error for anything malformed.
pub fn model_readers(data: &[u8]) {
    use callqa::model::{ct2, ggml, vocab};
    let _ = ggml::read_summary(std::io::Cursor::new(data));
    let _ = ggml::read_hparams(std::io::Cursor::new(data));
    let _ = ct2::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vocab::parse_tokens(text, true).map(|t| vocab::regular_token_bytes(&t));
        let _ = vocab::parse_tokens(text, false);
    }
}

/// Transcript text -> redaction: the output holds nothing the redactor would redact again,
/// and redacting twice changes nothing.
pub fn pii_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let (once, _) = callqa::privacy::redact_text(text);
        let (twice, found) = callqa::privacy::redact_text(&once);
        assert!(found.is_empty(), "{text:?} -> {once:?} -> {twice:?}");
        assert_eq!(once, twice);
    }
}
