//! Ending a decoding pass that has fallen into a repetition loop.
//!
//! In: the tokens a Whisper decoder has produced so far in a pass. Out: whether the pass is
//! looping, and (in the logits filter that whisper.cpp calls before every token) the logits
//! changed so that the next token ends the pass.
//!
//! whisper.cpp judges a pass by the entropy of its last 32 tokens only after the pass ends,
//! which a loop reaches at the 220-token limit: on far-field, noisy or fast Mandarin one
//! looping pass cost 2-4 s of a 22 s window, and temperature fallback may run five more
//! (README, Throughput). Testing the same entropy after every token ends the pass within a
//! few repetitions; whisper.cpp then keeps the text before the last timestamp, or fails the
//! pass and falls back, as it would have at the limit.

use std::os::raw::{c_int, c_void};

use whisper_rs::whisper_rs_sys::{
    whisper_context, whisper_n_vocab, whisper_state, whisper_token_data, whisper_token_eot,
};

/// Tokens and threshold of whisper.cpp's test (`whisper_sequence_score`, `entropy_thold`).
const WINDOW: usize = 32;
const ENTROPY_THRESHOLD: f64 = 2.4;

/// True when the last 32 token ids have less entropy than whisper.cpp accepts: a cycle of
/// 11 or fewer tokens repeated, or one token over and over.
pub fn is_looping(ids: impl ExactSizeIterator<Item = i32>) -> bool {
    let n = ids.len();
    if n < WINDOW {
        return false;
    }
    let mut counts = std::collections::HashMap::<i32, u32>::new();
    for id in ids.skip(n - WINDOW) {
        *counts.entry(id).or_default() += 1;
    }
    let entropy: f64 = counts
        .values()
        .map(|&count| {
            let p = count as f64 / WINDOW as f64;
            -p * p.ln()
        })
        .sum();
    entropy < ENTROPY_THRESHOLD
}

/// whisper.cpp's logits filter: when the decoder's tokens loop, leave end-of-text as the
/// only possible next token.
///
/// # Safety
/// Called by whisper.cpp with its context, `n_tokens` valid tokens and `n_vocab` logits.
pub unsafe extern "C" fn end_loops(
    ctx: *mut whisper_context,
    _state: *mut whisper_state,
    tokens: *const whisper_token_data,
    n_tokens: c_int,
    logits: *mut f32,
    _user_data: *mut c_void,
) {
    if tokens.is_null() || logits.is_null() || n_tokens < WINDOW as c_int {
        return;
    }
    let tokens = std::slice::from_raw_parts(tokens, n_tokens as usize);
    if !is_looping(tokens.iter().map(|t| t.id)) {
        return;
    }
    let logits = std::slice::from_raw_parts_mut(logits, whisper_n_vocab(ctx) as usize);
    let eot = whisper_token_eot(ctx) as usize;
    for (id, logit) in logits.iter_mut().enumerate() {
        if id != eot {
            *logit = f32::NEG_INFINITY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_looping;

    #[test]
    fn short_cycles_loop_and_speech_does_not() {
        let cycle = |len: i32| (0..40).map(move |i| i % len).collect::<Vec<_>>();
        assert!(is_looping(cycle(1).into_iter()));
        assert!(is_looping(cycle(11).into_iter()));
        // 12 distinct tokens spread over 32 have an entropy just above the threshold.
        assert!(!is_looping(cycle(12).into_iter()));
        // Ordinary text: mostly distinct tokens.
        assert!(!is_looping((0..40).map(|i| i * 7 % 29).collect::<Vec<_>>().into_iter()));
        // Too short to judge, as whisper.cpp.
        assert!(!is_looping(cycle(1)[..31].to_vec().into_iter()));
        // Only the last 32 count: a loop after ordinary text.
        let mut tail = (100..140).collect::<Vec<_>>();
        tail.extend(cycle(3));
        assert!(is_looping(tail.into_iter()));
    }
}
