#!/usr/bin/env bash
# Fuzz the parsers that read untrusted bytes, each for SECONDS (default 60):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets (tests/fuzz/fuzz_targets): wav_decode, manifest, config, model_readers, pii_text.
# Seeds are committed under fixtures/fuzz/<target>; what the fuzzer grows goes to
# ~/.cache/callqa/fuzz-corpus/<target> (kept between runs, never committed). A crash leaves
# its input in tests/fuzz/artifacts/<target>/ and fails this script: make it a regression
# test (the decode, ingest, config and privacy unit tests hold the earlier ones).
#
# cargo-fuzz is installed into ~/.cache/callqa/cargo-fuzz on first use; libFuzzer needs
# nightly flags, which RUSTC_BOOTSTRAP=1 allows on the stable toolchain. No sanitizer: the
# code under test is safe Rust, and the coverage-guided search is what finds panics.
# CALLQA_FUZZ_BUILD=dev builds unoptimised, with overflow checks (the smoke in scripts/test.sh);
# the default, release, runs several times as many inputs per second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(wav_decode manifest config model_readers pii_text)
cache="${CALLQA_CACHE:-$HOME/.cache/callqa}"
export PATH="$cache/cargo-fuzz/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz into $cache/cargo-fuzz" >&2
  cargo install --quiet --locked --root "$cache/cargo-fuzz" cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
cd "$root"
build="--${CALLQA_FUZZ_BUILD:-release}"
cargo fuzz build --fuzz-dir tests/fuzz -s none "$build"
for target in "${targets[@]}"; do
  corpus="$cache/fuzz-corpus/$target"
  mkdir -p "$corpus" "tests/fuzz/artifacts/$target"
  echo "fuzz: $target for ${seconds}s" >&2
  cargo fuzz run --fuzz-dir tests/fuzz -s none "$build" "$target" "$corpus" "fixtures/fuzz/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="tests/fuzz/artifacts/$target/" 2>&1 | grep -E "^(stat::|#[0-9]+.*DONE|==|SUMMARY|Done)" || true
  if compgen -G "tests/fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target found a crash: $(ls tests/fuzz/artifacts/$target/)" >&2
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
