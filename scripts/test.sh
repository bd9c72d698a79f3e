#!/usr/bin/env bash
# The whole test suite: installs what is missing, fetches the models, runs every test on the
# real model. Tests use the release profile so whisper.cpp and our DSP run optimised.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" --test
export CALLQA_PYTHON="$root/.venv/bin/python"
cd "$root"
# Benchmarks must keep compiling (scripts/bench*.sh run them); they are measurements, not tests.
cargo build --release --benches --features test-hooks
# cargo test, not nextest: tests of one binary share a transcribed batch (run.rs, metrics.rs,
# privacy.rs), which nextest's process per test would transcribe once per test.
cargo test --release --features test-hooks --lib --bins --tests "$@"
# A bounded smoke of every fuzz target (past findings already ran above, in
# tests/fuzz_regressions.rs); CALLQA_FUZZ_SECONDS=0 skips it, a test filter too. Built
# unoptimised: half the build time of an optimised fuzz build (6.7 against 13.2 min on 2
# vCPUs), with overflow checks on, and still thousands of inputs per target in 15 s. Not built
# beside the tests: even at nice 19 it slowed the kill test in durability.rs past its bounds.
fuzz_seconds="${CALLQA_FUZZ_SECONDS:-15}"
if [[ $# -eq 0 && "$fuzz_seconds" != 0 ]]; then
  CALLQA_FUZZ_BUILD=dev scripts/fuzz.sh "$fuzz_seconds"
fi
