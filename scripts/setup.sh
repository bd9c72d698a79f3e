#!/usr/bin/env bash
# Install what callqa needs on a fresh Debian machine with the Rust toolchain, and fetch the
# default model. Safe to run again: it installs only what is missing.
#
#   scripts/setup.sh            build tools + default model (base q8_0-f16enc; base bf16 where
#                               whisper.cpp is built with AVX-512 BF16, base f16 with AVX-512
#                               VNNI but no BF16: `callqa model default`)
#   scripts/setup.sh --test     also the q8_0, f16, bf16 and q8_0-f16enc models and the Python
#                               packages the tests read Parquet with
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'setup: %s\n' "$*" >&2; }

testing=false
[[ "${1:-}" == "--test" ]] && testing=true

# System packages: cmake builds whisper.cpp, patch applies scripts/whisper-cpp/*.patch to it,
# libclang drives bindgen, espeak-ng and sox rebuild fixtures.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v patch >/dev/null || missing+=(patch)
ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || missing+=(libclang-dev clang)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
command -v c++ >/dev/null || missing+=(build-essential)
if $testing; then
  # The report test looks at the HTML page in a real browser; PySpark reads the tables on a JVM.
  command -v chromium >/dev/null || missing+=(chromium)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
fi
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# whisper-rs-sys copies whisper.cpp into its OUT_DIR once and reruns its build script only on
# its own triggers, so a target folder built before a patch in scripts/whisper-cpp/ was added
# or changed keeps an unpatched copy (the link then fails on a callqa_* symbol, or q8_0-f16enc
# files fail to load). Such a copy is cleaned here, and the next build copies and patches
# whisper.cpp afresh.
for copy in "$root"/target/{,*/}*/build/whisper-rs-sys-*/out/whisper.cpp; do
  [[ -d "$copy" ]] || continue
  profile_dir="${copy%/build/whisper-rs-sys-*}"
  profile="${profile_dir##*/}"
  [[ "$profile" == debug ]] && profile=dev
  for patch_file in "$root"/scripts/whisper-cpp/*.patch; do
    if ! patch -d "$copy" -p1 --reverse --dry-run --force --silent -i "$patch_file" >/dev/null 2>&1; then
      say "${profile_dir#"$root"/}: whisper.cpp lacks $(basename "$patch_file"); cleaning whisper-rs-sys there, the next build copies and patches it again"
      (cd "$root" && cargo clean --quiet -p whisper-rs-sys --profile "$profile" --target-dir "${profile_dir%/*}")
      break
    fi
  done
done

# A project venv with the real clients the interoperability tests read our Parquet with. Its
# downloads run beside the model fetch, which builds callqa on a fresh machine.
venv="$root/.venv"
venv_job=
if $testing && { [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyarrow, duckdb, polars, pandas, nbconvert, ipykernel, matplotlib, yaml, pyspark, moto, boto3' 2>/dev/null; }; then
  say "creating $venv with pyarrow, duckdb, polars, pandas, nbconvert (beside the models)"
  venv_log="$(mktemp)"
  # --no-compile: byte-compiling PySpark and the rest at install took 3 of pip's 4 minutes.
  (python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
    -r "$root/scripts/requirements-test.txt") >"$venv_log" 2>&1 &
  venv_job=$!
  trap '[[ -n "$venv_job" ]] && kill "$venv_job" 2>/dev/null; true' EXIT
fi

# q8_0 runs everywhere (the tests name it); the default for this build is q8_0-f16enc, bf16 or f16.
"$root/scripts/fetch-model.sh" base q8_0
if $testing; then
  # Every weight the tests name, either default among them: no build needed to ask which.
  "$root/scripts/fetch-model.sh" base f16
  "$root/scripts/fetch-model.sh" base bf16
  "$root/scripts/fetch-model.sh" base q8_0-f16enc
else
  (cd "$root" && cargo build --release --quiet --bin callqa)
  read -r default_model default_weights < <("$root/target/release/callqa" model default)
  "$root/scripts/fetch-model.sh" "$default_model" "$default_weights"
fi

if [[ -n "$venv_job" ]]; then
  if ! wait "$venv_job"; then
    cat "$venv_log" >&2
    say "ERROR: creating $venv failed (pip's output above)"
    exit 1
  fi
  venv_job=
  rm -f "$venv_log"
fi
