#!/usr/bin/env bash
# Start-up against history (issue 12, item 5): a `calls` table of 10 million synthetic rows
# (365 call dates of 27,398 calls, one file per date as `callqa compact` leaves it), then
# `callqa run --no-asr` over the three fixture calls, dated into that history and into a new
# day, timed against the same runs on an empty output. Prints a Markdown table with the CPU.
#
#   scripts/bench-startup.sh [ROWS]      (default 10000000)
#   CALLQA_COMPARE=/path/to/other/callqa scripts/bench-startup.sh   adds a column for that binary
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rows="${1:-10000000}"
"$root/scripts/setup.sh" --test
cd "$root"
cargo build --release --quiet --bin callqa
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/audio"
cp fixtures/calls/*.wav "$work/audio/"
manifest() { # DATE -> a manifest of the fixture calls on that date
  echo "path,call_id,started_at"
  for f in "$work"/audio/*.wav; do echo "$f,$(basename "$f" .wav)-$1,$1T10:00:00Z"; done
}
manifest 2025-01-01 > "$work/template.csv"
./target/release/callqa run --no-asr --input "$work/template.csv" --out "$work/template" > /dev/null 2>&1
"$root/.venv/bin/python" - "$work/template" "$work/history" "$rows" <<'PY'
import datetime, os, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.dataset as ds, pyarrow.parquet as pq
template, history, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = ds.dataset(f"{template}/calls", format="parquet", partitioning="hive").to_table()
calls = calls.drop_columns(["call_date"])
days = 365
per_day = -(-rows // days)
for d in range(days):
    date = datetime.date(2025, 1, 1) + datetime.timedelta(days=d)
    n = min(per_day, rows - d * per_day)
    if n <= 0:
        break
    t = calls.take(pa.array([i % calls.num_rows for i in range(n)]))
    ids = pa.array([f"hist-{d:03d}-{i:06d}" for i in range(n)])
    digest = os.urandom(32 * n).hex()
    hashes = pa.array([digest[64 * i : 64 * (i + 1)] for i in range(n)])
    t = t.set_column(t.schema.get_field_index("call_id"), "call_id", ids)
    t = t.set_column(t.schema.get_field_index("content_sha256"), "content_sha256", hashes)
    folder = f"{history}/calls/call_date={date}"
    os.makedirs(folder)
    pq.write_table(t, f"{folder}/part-compact-bench_00000.parquet", compression="zstd")
PY
history_mb=$(du -sm "$work/history" | cut -f1)
manifest 2025-06-15 > "$work/old-day.csv"
manifest 2026-01-05 > "$work/new-day.csv"
seconds() { local t0=$EPOCHREALTIME; "$@" > /dev/null 2>&1; echo "$EPOCHREALTIME - $t0" | bc; }
measure() { # BINARY -> "first run, rerun (all skipped)" cells for each case
  local bin="$1" cells=""
  for case in empty:new-day history:new-day history:old-day; do
    local out="$work/out-${case%%:*}-${case##*:}"
    rm -rf "$out"
    [[ "${case%%:*}" == history ]] && cp -al "$work/history" "$out"
    cells+=" $(printf '%.2f' "$(seconds "$bin" run --no-asr --input "$work/${case##*:}.csv" --out "$out")")"
    cells+=" $(printf '%.2f' "$(seconds "$bin" run --no-asr --input "$work/${case##*:}.csv" --out "$out")")"
  done
  echo "$cells"
}
read -r -a this <<< "$(measure ./target/release/callqa)"
if [[ -n "${CALLQA_COMPARE:-}" ]]; then read -r -a other <<< "$(measure "$CALLQA_COMPARE")"; fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "calls history: $rows rows over 365 call dates, one file each, ${history_mb} MB; $cpu, $(nproc) cores"
echo
echo "| output | input's call date | run s (3 calls) | rerun s (3 skipped) |${CALLQA_COMPARE:+ $CALLQA_COMPARE: run s | rerun s |}"
echo "|---|---|---|---|${CALLQA_COMPARE:+---|---|}"
labels=("empty|new day" "10M-row history|new day" "10M-row history|a day with 27,398 calls")
for i in 0 1 2; do
  line="| ${labels[$i]%%|*} | ${labels[$i]##*|} | ${this[$((2 * i))]} | ${this[$((2 * i + 1))]} |"
  [[ -n "${CALLQA_COMPARE:-}" ]] && line+=" ${other[$((2 * i))]} | ${other[$((2 * i + 1))]} |"
  echo "$line"
done
