//! The converted Whisper weights on real speech (issue 2).

mod common;

use callqa::textnorm::{cer, wer};
use common::*;

const JFK: &str = "ggerganov__whisper.cpp/jfk.wav";
const AISHELL: &str = "FireRedTeam__FireRedASR/BAC009S0764W0121.wav";

#[test]
fn base_q8_0_transcribes_jfk_to_the_reference_words() {
    let t = transcriber("q8_0", "en");
    let text = joined_text(&transcribe_file(&t, &corpus(JFK)));
    let error = wer(&reference(JFK), &text);
    assert_eq!(error, 0.0, "WER {error} for {text:?}");
}

#[test]
fn base_q8_0_transcribes_mandarin_aishell_within_cer_0_15() {
    let t = transcriber("q8_0", "zh");
    let text = joined_text(&transcribe_file(&t, &corpus(AISHELL)));
    let error = cer(&reference(AISHELL), &text);
    assert!(error <= 0.15, "CER {error:.3} for {text:?}");
    // Output is Simplified even where base writes Traditional.
    assert_eq!(callqa::textnorm::to_simplified(&text), text);
}

#[test]
fn language_detection_picks_mandarin_on_auto() {
    let t = transcriber("q8_0", "auto");
    let text = joined_text(&transcribe_file(&t, &corpus(AISHELL)));
    assert!(cer(&reference(AISHELL), &text) <= 0.15, "{text:?}");
}

#[test]
fn f16_and_q8_0_both_load_and_agree_on_jfk() {
    let q8 = joined_text(&transcribe_file(&transcriber("q8_0", "en"), &corpus(JFK)));
    let f16 = joined_text(&transcribe_file(&transcriber("f16", "en"), &corpus(JFK)));
    assert_eq!(wer(&f16, &q8), 0.0, "f16 {f16:?} vs q8_0 {q8:?}");
    assert_eq!(wer(&reference(JFK), &f16), 0.0);
}

#[test]
fn a_missing_model_file_names_the_fetch_command() {
    let err = callqa::model::registry::resolve(Some(std::path::Path::new("/nonexistent/m.bin"))).unwrap_err();
    assert!(err.to_string().contains("scripts/fetch-model.sh base"), "{err}");
}
