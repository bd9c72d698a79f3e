#!/usr/bin/env bash
# Precision and recall of phrase detection on real speech, exact vs fuzzy matching
# (benches/phrases.rs). Prints a Markdown table; transcripts go to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench --bench phrases
