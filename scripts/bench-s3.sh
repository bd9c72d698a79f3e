#!/usr/bin/env bash
# The same calls read from and written to a local disk, then an S3 server (issue 12: S3 vs
# local disk). Prints a Markdown table with the CPU named.
#
#   scripts/bench-s3.sh            (CALLS=8 by default)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" --test
cd "$root"
cargo build --release --quiet --bin callqa
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" "$root/scripts/bench_s3.py" --callqa "$root/target/release/callqa" \
  --corpus "${CALLQA_CORPUS:-$root/../shared/corpus}" --work "$work" --calls "${CALLS:-8}"
echo
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
