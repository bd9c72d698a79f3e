#!/usr/bin/env bash
# End-to-end throughput: callqa against faster-whisper, side by side, same calls, same weights.
#
#   scripts/bench.sh            (THREADS=2 by default: the cores of this machine kind)
#   BLEED_DB=-30 scripts/bench.sh   the same calls with -30 dB crosstalk between channels
#   SEED=7 [CALLS=12] scripts/bench.sh   calls drawn with this seed from every clip with a
#                                        transcript, instead of the fixed set (test on seeds
#                                        nothing was tuned on)
#   REPEAT=3                         runs per engine and setting (the median is shown)
#   SETTINGS=split                   only 2 workers sharing the threads (each engine's faster
#                                    setting on 2 vCPUs); SETTINGS=one: only one worker
#   PEER=defaults                    faster-whisper with its own decoding defaults (a previous-
#                                    text prompt, 5 fallback candidates); the default,
#                                    matched, decodes as callqa does
#   ISA=avx2 scripts/bench.sh        an AVX2-only CPU on this one: whisper.cpp built without
#                                    AVX-512 and VNNI (target/avx2), CTranslate2, MKL and
#                                    oneDNN held to AVX2
#
# Assembles a fixed set of two-channel 8 kHz calls from ../shared/corpus, runs `callqa run`
# and faster-whisper (int8, VAD filter on, channel by channel), greedy and beam 5, each as
# one worker on THREADS threads and as 2 workers on THREADS/2 (callqa --jobs 2,
# faster-whisper num_workers=2), on the CTranslate2 files the model fetch
# downloaded, and prints throughput, seconds per stage, peak RSS and CER/WER, with the ratio
# callqa / faster-whisper. faster-whisper lives in a throwaway venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
ct2="$("$root/scripts/fetch-model.sh" base q8_0 --ct2 | tail -n 1)"
cd "$root"
isa="${ISA:-native}"
case "$isa" in
  native) ;;
  avx2)
    source "$root/scripts/ggml-portable.sh"
    export CARGO_TARGET_DIR="$root/target/avx2"
    export CT2_FORCE_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
    ;;
  *) echo "ISA must be native or avx2, not $isa" >&2; exit 2 ;;
esac
cargo build --release --quiet --bin callqa
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check faster-whisper==1.2.1 zhconv==1.4.3 pyarrow==26.0.1
"$work/venv/bin/python" "$root/scripts/bench_e2e.py" \
  --callqa "${CARGO_TARGET_DIR:-$root/target}/release/callqa" --ct2 "$ct2" --corpus "${CALLQA_CORPUS:-$root/../shared/corpus}" \
  --work "$work" --threads "${THREADS:-2}" ${BLEED_DB:+--bleed-db "$BLEED_DB"} \
  ${SEED:+--seed "$SEED"} --calls "${CALLS:-12}" --repeat "${REPEAT:-3}" --settings "${SETTINGS:-both}" --peer "${PEER:-matched}" ${CALLQA_ASR_EXTRA:+--extra-config "$CALLQA_ASR_EXTRA"}
# The ratio depends on the CPU (CTranslate2's int8 kernels use VNNI where there is one): name it.
flags=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx2\|fma\|f16c\|avx512f\|avx512bw\|avx512vl\|avx512_vnni\|avx_vnni\|avx512_bf16' | sort -u | tr '\n' ' ')
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; SIMD: $flags; ISA used: $isa"
