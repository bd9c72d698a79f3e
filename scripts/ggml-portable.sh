# Sourced by scripts/build-cuda.sh and scripts/bench.sh (ISA=avx2): ggml's CPU kernels for any
# x86-64 with AVX2, FMA and F16C rather than this CPU's own instructions, which another machine
# may lack (SIGILL). whisper-rs-sys hands GGML_* variables to whisper.cpp's CMake; cargo does
# not rebuild whisper.cpp when they change, so callers build into their own target folder.
export GGML_NATIVE=OFF GGML_AVX=ON GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_BMI2=ON
