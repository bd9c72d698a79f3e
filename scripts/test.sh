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
# The fuzz smoke's targets (below) build while the tests run, at the lowest priority, so they
# take only the CPU the tests leave idle (the kill test in durability.rs mostly waits). They
# start once cargo test has built the tests: cargo holds its package-cache lock until then. Built
# unoptimised: half the build time of an optimised fuzz build (6.7 against 13.2 min on 2
# vCPUs), with overflow checks on, and still thousands of inputs per target in 15 s.
# CALLQA_FUZZ_SECONDS=0 skips the smoke, and so does a test filter.
fuzz_seconds="${CALLQA_FUZZ_SECONDS:-15}"
fuzz_build=""
if [[ $# -eq 0 && "$fuzz_seconds" != 0 ]]; then
  export CALLQA_FUZZ_BUILD=dev
  setsid nice -n 19 scripts/fuzz.sh 0 > target/fuzz-build.log 2>&1 &
  fuzz_build=$!
  trap 'kill -- -"$fuzz_build" 2>/dev/null || true' EXIT
fi
# cargo test, not nextest: tests of one binary share a transcribed batch (run.rs, metrics.rs,
# privacy.rs), which nextest's process per test would transcribe once per test.
cargo test --release --features test-hooks --lib --bins --tests "$@"
# A bounded smoke of every fuzz target (past findings already ran above, in
# tests/fuzz_regressions.rs).
if [[ -n "$fuzz_build" ]]; then
  wait "$fuzz_build" || { cat target/fuzz-build.log >&2; exit 1; }
  scripts/fuzz.sh "$fuzz_seconds"
fi
