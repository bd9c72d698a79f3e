#!/usr/bin/env bash
# callqa's CUDA build on a GPU machine (issue 15, item 3): throughput and CER/WER on
# scripts/bench.sh's call set for a seed, GPU against the same machine's CPU cores.
#
#   scripts/bench-gpu.sh pack          here: the CUDA build (scripts/build-cuda.sh), base q5_0 and
#                                      the call set (SEED=7, CALLS=12) into .gpu/part1 (the model)
#                                      and .gpu/part2 (binary, calls), each under 60 MiB
#   on the GPU machine, two calls a few seconds apart (the machine keeps /tmp while warm):
#     python3 scripts/bench_gpu.py stage --pack .gpu               (carrying .gpu/part1)
#     python3 scripts/bench_gpu.py run --pack .gpu --out "$OUT"    (carrying .gpu/part2)
#   scripts/bench-gpu.sh score DIR [PLAN]   here: the table, from DIR/results.json (PLAN: the
#                                      pack's .gpu/part2/plan.json, or one kept beside results)
#
# The H100 runs of 2026-11-26 (README, Throughput) are in benches/gpu-h100-2026-11-26:
#   scripts/bench-gpu.sh score benches/gpu-h100-2026-11-26/once benches/gpu-h100-2026-11-26/plan.json
#
# The GPU machine has CUDA 13.0 in /usr/local/cuda-13.0, Python with pyarrow, no Rust and no
# network: the calls are assembled and scored here, only decoded there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# pack and score borrow scripts/bench_e2e.py's call set and error rates (pyarrow, zhconv).
venv="$root/target/bench-gpu-venv"
if ! "$venv/bin/python" -c 'import pyarrow, zhconv' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pyarrow==26.0.1 zhconv==1.4.3
fi
case "${1:-}" in
  pack)
    scripts/build-cuda.sh
    scripts/fetch-model.sh base q5_0
    "$venv/bin/python" scripts/bench_gpu.py pack --callqa-cpu target/release/callqa --callqa-cuda target/cuda/release/callqa \
      --model models/ggml-base-q5_0.bin --corpus "${CALLQA_CORPUS:-$root/../shared/corpus}" \
      --seed "${SEED:-7}" --calls "${CALLS:-12}" --out .gpu
    ;;
  score)
    "$venv/bin/python" scripts/bench_gpu.py score --results "${2:?the folder holding results.json}" --plan "${3:-.gpu/part2/plan.json}"
    ;;
  *) echo "usage: scripts/bench-gpu.sh pack | score DIR [PLAN]" >&2; exit 2 ;;
esac
