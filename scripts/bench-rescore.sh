#!/usr/bin/env bash
# `callqa rescore` against a fresh `callqa run` with the same new config, side by side on one
# machine: a month of output (the English fixture calls, copied over 30 call dates), first
# scored with the default config; then the new config (fixtures/rescore/new.toml: an extra
# phrase rule, other silence and scorecard thresholds) applied both ways. Prints a markdown table and checks that both
# give the same calls and events (README, "Rescoring").
#
#   scripts/bench-rescore.sh [COPIES]   COPIES of each fixture (default 10: 30 calls)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
copies="${1:-10}"
"$root/scripts/setup.sh" --test
cd "$root"
cargo build --release --quiet --bin callqa
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/audio"
echo "path,call_id,started_at" > "$work/manifest.csv"
n=0
for name in en_support_pcm16 en_support_mulaw en_support_mono; do
  cp "fixtures/calls/$name.wav" "$work/audio/"
  for ((k = 0; k < copies; k++)); do
    day=$(printf '%02d' $((n % 30 + 1)))
    echo "audio/$name.wav,$name-$k,2026-10-${day}T10:00:00Z" >> "$work/manifest.csv"
    n=$((n + 1))
  done
done
printf '[asr]\nadapt_threads = false\n' > "$work/base.toml"
cat "$work/base.toml" fixtures/rescore/new.toml > "$work/new.toml"
seconds() { local t0=$EPOCHREALTIME; "$@" > /dev/null 2>&1; echo "$EPOCHREALTIME - $t0" | bc; }
./target/release/callqa run --input "$work/manifest.csv" --out "$work/month" --config "$work/base.toml" > /dev/null 2>&1
fresh=$(seconds ./target/release/callqa run --input "$work/manifest.csv" --out "$work/fresh" --config "$work/new.toml")
rescore=$(seconds ./target/release/callqa rescore --out "$work/month" --config "$work/new.toml" --month 2026-10)
same=$("$root/.venv/bin/python" - "$work/month" "$work/fresh" <<'PY'
import duckdb, sys
def rows(out, table, columns):
    sql = f"select {columns} from read_parquet('{out}/{table}/*/*.parquet', hive_partitioning = true)"
    return sorted(map(str, duckdb.sql(sql).fetchall()))
tables = [("calls", "* exclude (run_id, processed_at, pipeline_version, started_at)"), ("events", "*")]
same = all(rows(sys.argv[1], t, c) == rows(sys.argv[2], t, c) for t, c in tables)
print("yes" if same else "NO")
PY
)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "$n calls over 30 call dates; $cpu, $(nproc) cores; same calls and events: $same"
echo
echo "| new config applied by | wall s | speed-up |"
echo "|---|---|---|"
echo "| callqa run (fresh: decode, VAD, Whisper, scoring) | $(printf '%.1f' "$fresh") | 1x |"
echo "| callqa rescore (stored utterances and speech) | $(printf '%.2f' "$rescore") | $(echo "$fresh / $rescore" | bc)x |"
[[ "$same" == yes ]]
