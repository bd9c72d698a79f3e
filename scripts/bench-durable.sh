#!/usr/bin/env bash
# The durable pipeline (this tree) against a baseline revision, side by side on one machine:
# throughput (greedy and beam 5), peak RSS of the whole process tree by batch size and for a
# 4-hour file, and throughput with a competing CPU load. Prints markdown tables (README,
# "Durable runs").
#
#   scripts/bench-durable.sh [REV] [PARTS]   REV defaults to 7dd6400, the last commit before
#                                            them; PARTS e.g. throughput (default: all)
#
# The baseline is built once from `git archive REV` into the cache ($CALLQA_CACHE_DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:-7dd6400}"
"$root/scripts/setup.sh" --test
cd "$root"
cargo build --release --quiet --bin callqa
cache="${CALLQA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/callqa}/baseline-$rev"
if [[ ! -x "$cache/target/release/callqa" ]]; then
  rm -rf "$cache/src"
  mkdir -p "$cache/src"
  git -C "$root" archive "$rev" | tar -x -C "$cache/src"
  (cd "$cache/src" && CARGO_TARGET_DIR="$cache/target" cargo build --release --quiet --bin callqa)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check zhconv==1.4.3
"$root/.venv/bin/python" "$root/scripts/bench_durable.py" \
  --new "$root/target/release/callqa" --old "$cache/target/release/callqa" --old-label "baseline $rev" \
  --model "$root/models/ggml-base-q8_0.bin" --corpus "${CALLQA_CORPUS:-$root/../shared/corpus}" --work "$work" \
  --parts "${2:-throughput,memory,contention}" --repeat "${REPEAT:-3}"
