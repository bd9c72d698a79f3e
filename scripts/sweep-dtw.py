"""Look for inputs that crash whisper.cpp: assemble many two-channel 8 kHz calls from the
corpus with a seed, run `callqa run` over them (default settings: beam 5, DTW timing) and
report the windows whose worker died and were decoded again without DTW.

    .venv/bin/python scripts/sweep-dtw.py WORK CALLS SEED

fixtures/specs/dtw_assert/ keeps the first 2 of the 19 calls of seed 2, the batch in which the 19th
call hit whisper.cpp's DTW median-filter assert while windows still shared a whisper state
(README, Durable runs); the other 17 are this script's output for seed 2.
"""
import csv
import json
import random
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
corpus = root.parent / "shared" / "corpus"
callqa = root / "target" / "release" / "callqa"
rows = list(csv.DictReader(open(corpus / "MANIFEST.tsv", encoding="utf-8"), delimiter="\t"))
clips = {lang: [r["file"] for r in rows if r["file"].endswith(".wav") and r["duration_s"] and float(r["duration_s"]) < 40
                and r["language"] == lang] for lang in ("zh", "en")}
duration = {r["file"]: float(r["duration_s"]) for r in rows if r["duration_s"]}


def main():
    work, count, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    (work / "calls").mkdir(parents=True, exist_ok=True)
    for k in range(count):
        pool = clips["zh"] if k % 3 else clips["en"]
        turns = [rng.choice(pool) for _ in range(rng.randint(2, 6))]
        lines = ["sample_rate_hz = 8000", f'codec = "{rng.choice(["pcm_s16", "mulaw"])}"',
                 "tail_s = %.1f" % rng.choice([0.2, 1.0, 3.0]), ""]
        t = rng.uniform(0.1, 2.0)
        for i, clip in enumerate(turns):
            lines += ["[[turns]]", f'speaker = "{"agent" if i % 2 == 0 else "customer"}"', f'clip = "{clip}"',
                      f"start_s = {t:.2f}", 'text = ""', ""]
            t = max(t + duration[clip] + rng.choice([-0.5, 0.3, 0.6, 1.0, 1.5, 6.0, 20.0]), 0.1)
        spec = work / f"c{k:03d}.toml"
        spec.write_text("\n".join(lines))
        subprocess.run([callqa, "assemble", "--spec", spec, "--clips", corpus, "--out", work / "calls" / f"c{k:03d}.wav"],
                       check=True, capture_output=True)
    stats = work / "stats.json"
    run = subprocess.run([callqa, "run", "--input", work / "calls", "--out", work / "out", "--stats", stats],
                         capture_output=True, text=True)
    for line in run.stderr.splitlines():
        if "without DTW" in line or "failed" in line:
            print(line)
    print(run.stdout.strip())
    print("windows decoded again without DTW:", json.loads(stats.read_text())["dtw_fallbacks"])


if __name__ == "__main__":
    main()
