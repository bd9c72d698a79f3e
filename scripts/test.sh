#!/usr/bin/env bash
# The whole test suite: installs what is missing, fetches the models, runs every test on the
# real model. Tests use the release profile so whisper.cpp and our DSP run optimised.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" --test
export CALLQA_PYTHON="$root/.venv/bin/python"
# whisper.cpp's objects through ccache (setup.sh --test installs it): the fuzz build below
# compiles the same C++ again, and gets it from the cache. whisper-rs-sys hands CMAKE_*
# variables to whisper.cpp's CMake.
export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
cd "$root"
# Benchmarks must keep compiling (scripts/bench*.sh run them); they are measurements, not tests.
cargo build --release --benches --features test-hooks
cargo test --release --features test-hooks --lib --bins --tests "$@"
# A bounded smoke of every fuzz target (past findings already ran above, in
# tests/fuzz_regressions.rs); CALLQA_FUZZ_SECONDS=0 skips it, a test filter too.
fuzz_seconds="${CALLQA_FUZZ_SECONDS:-15}"
if [[ $# -eq 0 && "$fuzz_seconds" != 0 ]]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
