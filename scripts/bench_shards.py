"""Driver of scripts/bench-shards.sh: one process against shards on the same calls and machine.

Assembles two-channel 8 kHz calls from ../shared/corpus (seed 2027, not used elsewhere), then
times whole batches, each into a fresh output folder, with the default configuration:
  1 process (--jobs 1), 1 process (--jobs 2), 2 shards side by side, 2 shards with 1 thread
each. Prints a Markdown table: wall seconds, call seconds per wall second, and the ratio to
the single process.
"""
import argparse
import csv
import json
import random
import subprocess
import time
from pathlib import Path

ZH = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "modelscope__FunASR/asr_example.wav",
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "k2-fsa__sherpa/funasr-nano_far_2.wav",
    "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    "k2-fsa__sherpa/funasr-nano_far_5.wav",
]
EN = [
    "wenet-e2e__wenet/librispeech-1995-1837-0001.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "ggerganov__whisper.cpp/jfk.wav",
]


def build_calls(callqa, corpus, work, count):
    rng = random.Random(2027)
    durations = {r["file"]: float(r["duration_s"]) for r in csv.DictReader(open(corpus / "MANIFEST.tsv", encoding="utf-8"), delimiter="\t") if r["duration_s"]}
    folder = work / "calls"
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for k in range(count):
        pool = EN if k % 4 == 3 else ZH
        clips = rng.sample(pool, 4)
        lines, t = ["sample_rate_hz = 8000", 'codec = "pcm_s16"', "tail_s = 1.0", ""], 0.5
        for i, clip in enumerate(clips):
            speaker = "agent" if i % 2 == 0 else "customer"
            lines += ["[[turns]]", f'speaker = "{speaker}"', f'clip = "{clip}"', f"start_s = {round(t, 2)}", ""]
            t += durations[clip] + rng.choice([0.6, 1.0, 1.5, 6.0])
        spec = work / f"call{k:02}.toml"
        spec.write_text("\n".join(lines), encoding="utf-8")
        wav = folder / f"call{k:02}.wav"
        subprocess.run([callqa, "assemble", "--spec", spec, "--clips", corpus, "--out", wav], check=True, capture_output=True)
        total += json.loads(wav.with_suffix(".truth.json").read_text(encoding="utf-8"))["duration_s"]
        wav.with_suffix(".truth.json").unlink()
    return folder, total


def batch(callqa, calls, out, shards, extra, threads):
    config = out.with_suffix(".toml")
    config.write_text(f"[asr]\nthreads = {threads}\n", encoding="utf-8")
    start = time.perf_counter()
    if shards == 1:
        procs = [subprocess.Popen([callqa, "run", "--input", calls, "--out", out, "--config", config, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    else:
        procs = [subprocess.Popen([callqa, "run", "--input", calls, "--out", out, "--config", config, "--shard", f"{k}/{shards}", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in range(shards)]
    codes = [p.wait() for p in procs]
    assert all(c == 0 for c in codes), codes
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--callqa", required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--calls", type=int, default=8)
    args = p.parse_args()
    calls, audio_s = build_calls(args.callqa, args.corpus, args.work, args.calls)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    print(f"{args.calls} two-channel 8 kHz calls, {audio_s:.0f} s of call audio; {cpu}, {len(open('/proc/cpuinfo').read().split('processor')) - 1} logical CPUs; default config (beam 5)")
    print("| layout | wall s | call-s per wall-s | vs 1 process |")
    print("|---|---|---|---|")
    base = None
    for name, shards, extra, threads in [
        ("1 process, --jobs 1", 1, [], 0),
        ("1 process, --jobs 2", 1, ["--jobs", "2"], 0),
        ("2 shards side by side", 2, [], 0),
        ("2 shards, asr.threads = 1 each", 2, [], 1),
    ]:
        wall = batch(args.callqa, calls, args.work / name.replace(" ", "_").replace(",", "").replace("=", ""), shards, extra, threads)
        base = base or wall
        print(f"| {name} | {wall:.1f} | {audio_s / wall:.2f} | {base / wall:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
