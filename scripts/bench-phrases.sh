#!/usr/bin/env bash
# Precision and recall of phrase detection on real speech, one row per recall lever: decoding
# settings, prompts, matching thresholds (benches/phrases.rs; README, Phrase rules). Prints a
# Markdown table; transcripts go to stderr.
#   CALLQA_BENCH_LEVERS="greedy,beam 5 + service"   only the decodings whose names start so
#   CALLQA_BENCH_SHOW_ERRORS=1                       each miss and false hit on stderr
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench --bench phrases
