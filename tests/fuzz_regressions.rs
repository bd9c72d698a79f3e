//! Every committed fuzz seed and every past fuzz finding (fixtures/fuzz/<target>/, findings
//! named `regress-*`) through the same checks the fuzz targets make, in the ordinary suite;
//! then a fixed, seeded set of mutants of those inputs through the same checks.
//! `scripts/fuzz.sh` searches for new findings with coverage guidance.

#[path = "fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("wav_decode", checks::wav_decode),
    ("manifest", checks::manifest),
    ("config", checks::config),
    ("model_readers", checks::model_readers),
    ("pii_text", checks::pii_text),
];

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

#[test]
fn seeds_and_past_findings_pass_every_fuzz_check() {
    for (target, check) in TARGETS {
        let inputs = inputs(target);
        assert!(inputs.len() >= 2, "{target} has seeds");
        for (path, bytes) in inputs {
            if std::panic::catch_unwind(|| check(&bytes)).is_err() {
                panic!("{} fails its fuzz check again", path.display());
            }
        }
    }
    let findings = inputs("pii_text")
        .iter()
        .filter(|(path, _)| path.file_name().unwrap().to_string_lossy().starts_with("regress-"))
        .count();
    assert!(findings >= 4);
}

/// What the fuzzers' mutators do, without coverage guidance: bit flips, boundary values in
/// bytes and 32-bit fields (lengths and counts in RIFF and GGML headers), cuts, repeats,
/// splices with another input, and tokens the text parsers give meaning to.
fn mutant(rng: &mut impl Rng, input: &[u8], others: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    const TOKENS: [&str; 16] =
        ["\n", "\r\n", ",", "\"", "=", "[", "]", "#", "@", ".", "-", "0", "9", "一", "\u{FF10}", "\u{0}"];
    const WORDS: [u32; 6] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 44];
    let mut data = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..8) {
            0 if at < data.len() => data[at] ^= 1 << rng.random_range(0..8),
            1 if at < data.len() => data[at] = [0, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)],
            2 if at + 4 <= data.len() => {
                data[at..at + 4].copy_from_slice(&WORDS[rng.random_range(0..WORDS.len())].to_le_bytes())
            }
            3 => data.truncate(at),
            4 => {
                let end = rng.random_range(at..=data.len());
                data.drain(at..end);
            }
            5 => {
                let end = rng.random_range(at..=data.len().min(at + 64));
                let copy = data[at..end].to_vec();
                data.splice(at..at, copy);
            }
            6 => {
                let other = &others[rng.random_range(0..others.len())].1;
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                data.splice(at..at, token.iter().copied());
            }
        }
    }
    data
}

/// The same mutants every run (a fixed seed), so a failure here reproduces; a failing
/// mutant is written to tests/fuzz/artifacts/<target>/ to become a `regress-*` seed.
/// `CALLQA_FUZZ_MUTANTS` sets how many per input (default 2000).
#[test]
fn seeded_mutants_of_every_input_pass_every_fuzz_check() {
    let per_input: usize = std::env::var("CALLQA_FUZZ_MUTANTS").map_or(2000, |n| n.parse().unwrap());
    for (target, check) in TARGETS {
        let inputs = inputs(target);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261127);
        for (path, bytes) in &inputs {
            for k in 0..per_input {
                let data = mutant(&mut rng, bytes, &inputs);
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/artifacts").join(target);
                    std::fs::create_dir_all(&dir).unwrap();
                    let name = format!("mutant-{}-{k}", path.file_name().unwrap().to_string_lossy());
                    std::fs::write(dir.join(&name), &data).unwrap();
                    panic!(
                        "{target}: mutant {k} of {} fails its check; saved as {}",
                        path.display(),
                        dir.join(name).display()
                    );
                }
            }
        }
    }
}
