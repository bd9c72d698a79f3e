#!/usr/bin/env bash
# Rebuild fixtures/calls/ from the specs in fixtures/specs/: English speech synthesised with
# espeak-ng (which Whisper transcribes almost perfectly), assembled into calls with exact
# ground truth (*.truth.json). Mandarin test calls are not fixtures: tests assemble them
# from the real recordings in ../shared/corpus at run time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v espeak-ng >/dev/null || { echo "make-fixtures: espeak-ng is missing (scripts/setup.sh installs it)" >&2; exit 1; }
clips="$(mktemp -d)"
trap 'rm -rf "$clips"' EXIT
while IFS='|' read -r name voice text; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  espeak-ng -v "$voice" -s 165 -w "$clips/$name.wav" "$text"
done < "$root/fixtures/specs/en_support.lines"
cd "$root"
cargo build --release --quiet --bin callqa
callqa=target/release/callqa
mkdir -p fixtures/calls
spec=fixtures/specs/en_support.toml
"$callqa" assemble --spec "$spec" --clips "$clips" --out fixtures/calls/en_support_pcm16.wav
# The same call as a G.711 mu-law archive would store it, and as a mono (mixed) recording.
sed 's/^codec = .*/codec = "mulaw"/' "$spec" > "$clips/mulaw.toml"
"$callqa" assemble --spec "$clips/mulaw.toml" --clips "$clips" --out fixtures/calls/en_support_mulaw.wav
sed 's/^codec = .*/codec = "pcm_s16"\nmono = true/' "$spec" > "$clips/mono.toml"
"$callqa" assemble --spec "$clips/mono.toml" --clips "$clips" --out fixtures/calls/en_support_mono.wav
