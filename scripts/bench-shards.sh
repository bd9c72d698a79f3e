#!/usr/bin/env bash
# One process against shards on this machine: the same calls, whole batches timed, printed as
# a Markdown table with the CPU named (issue 12: 1 shard vs 2).
#
#   scripts/bench-shards.sh            (CALLS=8 by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo build --release --quiet --bin callqa
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$root/scripts/bench_shards.py" --callqa "$root/target/release/callqa" \
  --corpus "${CALLQA_CORPUS:-$root/../shared/corpus}" --work "$work" --calls "${CALLS:-8}"
