#!/usr/bin/env bash
# callqa with whisper.cpp's CUDA backend, built on this machine (no GPU needed) from registry
# packages only (issue 15, item 3): the CUDA compiler, runtime, cuBLAS and CCCL come from PyPI
# (NVIDIA's nvidia-* wheels), for CUDA 13.0 (the GPU machines' driver and libraries) and the
# Hopper architecture (sm_90; CUDA_ARCH=... for another).
#
#   scripts/build-cuda.sh            -> target/cuda/release/callqa
#
# The binary loads libcudart.so.13, libcublas.so.13 and libcublasLt.so.13 at run time: from
# the machine's CUDA (LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64) or from the same wheels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
prefix="${CALLQA_CUDA_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/callqa/cuda-13.0}"
cuda="$prefix/nvidia/cu13"
# Every part pinned to 13.0: nvcc's dependencies (nvvm, crt) float to the newest CUDA
# otherwise, whose cicc writes PTX that the 13.0 ptxas refuses ("Unsupported .version").
packages=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.1.0.3 nvidia-cuda-cccl==13.0.85)
if [[ "$(cat "$prefix/.packages" 2>/dev/null)" != "${packages[*]}" ]]; then
  echo "build-cuda: installing the CUDA 13.0 compiler and libraries into $prefix" >&2
  rm -rf "$prefix"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$prefix" "${packages[@]}"
  echo "${packages[*]}" > "$prefix/.packages"
fi
# The link names the wheels leave out, and the lib64 folder nvcc's profile links from.
for lib in cudart cublas cublasLt; do ln -sf "lib$lib.so.13" "$cuda/lib/lib$lib.so"; done
ln -sfn lib "$cuda/lib64"
# whisper-rs-sys also links -lcuda (the driver, which a build machine need not have; with
# GGML_CUDA_NO_VMM nothing calls it) and -lculibos (for a static cuBLAS): empty stand-ins,
# which the linker's --as-needed then drops.
stubs="$prefix/stubs"
mkdir -p "$stubs"
[[ -f "$stubs/libcuda.so" ]] || gcc -shared -o "$stubs/libcuda.so" -x c /dev/null
[[ -f "$stubs/libculibos.a" ]] || ar rcs "$stubs/libculibos.a"
export PATH="$cuda/bin:$PATH" CUDACXX="$cuda/bin/nvcc" CUDAToolkit_ROOT="$cuda"
export CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" GGML_CUDA_NO_VMM=ON
# The binary runs on GPU machines, not on the one that built it.
source "$root/scripts/ggml-portable.sh"
export RUSTFLAGS="-L native=$cuda/lib -L native=$stubs"
cd "$root"
cargo build --release --features cuda --bin callqa --target-dir target/cuda
ls -l target/cuda/release/callqa
