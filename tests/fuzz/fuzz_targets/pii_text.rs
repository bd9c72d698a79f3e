//! libFuzzer target: see `checks::pii_text`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::pii_text(data));
