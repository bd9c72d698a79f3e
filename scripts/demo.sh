#!/usr/bin/env bash
# The main job on the bundled example calls: installs what is missing, fetches the default
# model, builds, runs `callqa run` over fixtures/calls and says where the tables went.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --quiet --bin callqa
out="${1:-$root/out}"
status=0
target/release/callqa run --input fixtures/calls --out "$out" --jobs 2 || status=$?
echo "Parquet tables: $out/{calls,utterances,events}/call_date=YYYY-MM-DD/*.parquet, $out/{failures,runs}/*.parquet  (schema: target/release/callqa schema)"
exit "$status"
