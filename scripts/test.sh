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
# The suite above ran every fuzz seed, past finding and a fixed set of their mutants (in
# tests/fuzz_regressions.rs) through the fuzz checks. The coverage-guided search
# (scripts/fuzz.sh) needs its own instrumented build of callqa and every dependency, 6 of CI's
# 38 minutes on 2 vCPUs, so it runs here only when asked: CALLQA_FUZZ_SECONDS=N runs each
# target N seconds after the tests, built unoptimised with overflow checks. Not built beside
# the tests: even at nice 19 it slowed the kill test in durability.rs past its bounds.
fuzz_seconds="${CALLQA_FUZZ_SECONDS:-0}"
if [[ $# -eq 0 && "$fuzz_seconds" != 0 ]]; then
  CALLQA_FUZZ_BUILD=dev scripts/fuzz.sh "$fuzz_seconds"
fi
