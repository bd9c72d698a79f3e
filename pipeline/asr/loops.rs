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
//!
//! The entropy test cannot see a cycle of more than 11 tokens: beam search on a far-field
//! Mandarin channel repeated a 17-character phrase 15 times (README, Throughput). So a pass
//! also ends when its last tokens are one cycle of 12 to 64 tokens three times over, which
//! speech does not do.

use std::os::raw::{c_int, c_void};

use whisper_rs::whisper_rs_sys::{
    whisper_context, whisper_n_vocab, whisper_state, whisper_token_data, whisper_token_eot,
};

/// Tokens and threshold of whisper.cpp's test (`whisper_sequence_score`, `entropy_thold`).
const WINDOW: usize = 32;
const ENTROPY_THRESHOLD: f64 = 2.4;

/// Cycles the entropy test misses, and how often one must repeat back to back.
const LONG_CYCLES: std::ops::RangeInclusive<usize> = 12..=64;
const LONG_CYCLE_REPEATS: usize = 3;

/// True when the token ids loop: the last 32 have less entropy than whisper.cpp accepts (a
/// cycle of 11 or fewer tokens, or one token over and over), or they end in a longer cycle
/// repeated three times.
pub fn is_looping(ids: &[i32]) -> bool {
    low_entropy(ids) || ends_in_long_cycle(ids)
}

fn ends_in_long_cycle(ids: &[i32]) -> bool {
    LONG_CYCLES.clone().take_while(|period| period * LONG_CYCLE_REPEATS <= ids.len()).any(|period| {
        let tail = &ids[ids.len() - period * LONG_CYCLE_REPEATS..];
        tail[period..].iter().zip(tail).all(|(later, earlier)| later == earlier)
    })
}

fn low_entropy(ids: &[i32]) -> bool {
    let n = ids.len();
    if n < WINDOW {
        return false;
    }
    let mut counts = std::collections::HashMap::<i32, u32>::new();
    for &id in &ids[n - WINDOW..] {
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
    let ids: Vec<i32> = tokens.iter().map(|t| t.id).collect();
    if !is_looping(&ids) {
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
        assert!(is_looping(&cycle(1)));
        assert!(is_looping(&cycle(11)));
        // 12 distinct tokens spread over 32 have an entropy just above the threshold: that
        // cycle loops once three rounds (36 tokens) are complete.
        assert!(!is_looping(&cycle(12)[..35]));
        assert!(is_looping(&cycle(12)));
        // Ordinary text: mostly distinct tokens.
        assert!(!is_looping(&(0..40).map(|i| i * 7 % 29).collect::<Vec<_>>()));
        // Too short to judge, as whisper.cpp.
        assert!(!is_looping(&cycle(1)[..31]));
        // Only the last 32 count: a loop after ordinary text.
        let mut tail = (100..140).collect::<Vec<_>>();
        tail.extend(cycle(3));
        assert!(is_looping(&tail));
    }

    #[test]
    fn long_cycles_loop_after_three_rounds() {
        let speech: Vec<i32> = (1000..1050).collect();
        let phrase: Vec<i32> = (0..17).collect();
        let with_rounds = |rounds: usize| {
            let mut ids = speech.clone();
            (0..rounds).for_each(|_| ids.extend(&phrase));
            ids
        };
        assert!(!is_looping(&with_rounds(2)), "a phrase said twice is speech");
        assert!(is_looping(&with_rounds(3)));
        // The third round must be complete, and the rounds back to back.
        assert!(!is_looping(&with_rounds(3)[..speech.len() + 50]));
        let mut apart = with_rounds(2);
        apart.push(9999);
        apart.extend(&phrase);
        assert!(!is_looping(&apart));
        // Past 64 tokens a cycle is left to whisper.cpp's checks.
        let long: Vec<i32> = (0..65).collect();
        assert!(!is_looping(&long.repeat(3)));
    }
}
