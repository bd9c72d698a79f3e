"""Driver of scripts/bench-gpu.sh: callqa's CUDA build on a lent GPU machine, in three steps.

    pack   (here)            the CUDA binary, the model and scripts/bench.sh's call set for a
                             seed, as two parts that each fit one device call (64 MiB)
    stage  (GPU machine)     keep part 1 (the model) where the next call finds it
    run    (GPU machine)     every setting in MATRIX, GPU first; results.json after each one
    score  (here)            CER/WER against the call set's references, and the table

The GPU machine has CUDA 13.0 and Python with pyarrow but no Rust, no network and no
zhconv, so the calls are assembled and scored here and only decoded there.
"""
import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

# This script's folder is on the path: the calls, transcripts and scoring are the CPU bench's.
import bench_e2e

# (name, use_gpu, beam, jobs, extra [asr] lines), most wanted first: a run cut short by the
# call's time limit still returns what it finished.
MATRIX = [
    ("gpu-greedy-j1", True, 1, 1, ""),
    ("gpu-beam5-j1", True, 5, 1, ""),
    ("gpu-greedy-j4", True, 1, 4, ""),
    ("gpu-beam5-j4", True, 5, 4, ""),
    ("gpu-greedy-j8", True, 1, 8, ""),
    ("gpu-beam5-j8", True, 5, 8, ""),
    ("gpu-greedy-j4-flash", True, 1, 4, "flash_attention = true\n"),
    ("gpu-greedy-j1-nodtw", True, 1, 1, "dtw_timestamps = false\n"),
    ("gpu-greedy-j8-nodtw", True, 1, 8, "dtw_timestamps = false\n"),
    ("gpu-greedy-j16", True, 1, 16, ""),
    ("gpu-beam5-j16", True, 5, 16, ""),
    ("gpu-greedy-j8-flash", True, 1, 8, "flash_attention = true\n"),
    ("cpu-greedy-j8", False, 1, 8, ""),
    ("cpu-beam5-j8", False, 5, 8, ""),
]
STAGE = Path("/tmp/callqa-gpu-stage")
MODEL = "ggml-base-q5_0.bin"
PART_LIMIT = 60 << 20


def pack(args):
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "part1").mkdir(parents=True)
    (out / "part2").mkdir()
    shutil.copy(args.model, out / "part1" / MODEL)
    work = out / "work"
    plan = bench_e2e.build_calls(argparse.Namespace(
        callqa=args.callqa_cpu, corpus=args.corpus, work=work, seed=args.seed, calls=args.calls, bleed_db=None))
    for call in plan:
        call["wav"] = str(Path(call["wav"]).relative_to(work))
    (out / "part2" / "plan.json").write_text(json.dumps(plan, ensure_ascii=False, indent=1), encoding="utf-8")
    with tarfile.open(out / "part2" / "calls.tar.xz", "w:xz") as tar:
        tar.add(work / "calls", arcname="calls")
    stripped = work / "callqa"
    subprocess.run(["strip", "-o", stripped, args.callqa_cuda], check=True)
    with open(stripped, "rb") as src, lzma.open(out / "part2" / "callqa.xz", "wb", preset=6) as dst:
        shutil.copyfileobj(src, dst)
    shutil.rmtree(work)
    for part in ("part1", "part2"):
        size = sum(f.stat().st_size for f in (out / part).iterdir())
        print(f"{out / part}: {size / 2**20:.1f} MiB")
        if size > PART_LIMIT:
            sys.exit(f"{out / part} is over {PART_LIMIT >> 20} MiB: it would not travel in one call")


def stage(args):
    STAGE.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.pack / "part1" / MODEL, STAGE / MODEL)
    print(f"staged {STAGE / MODEL}")


def run(args):
    out = args.out
    work = Path("/tmp/callqa-gpu-work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    model = next((p for p in (args.pack / "part1" / MODEL, STAGE / MODEL) if p.exists()), None)
    if model is None:
        sys.exit(f"no {MODEL}: run `stage` in the call before")
    part2 = args.pack / "part2"
    callqa = work / "callqa"
    with lzma.open(part2 / "callqa.xz") as src, open(callqa, "wb") as dst:
        shutil.copyfileobj(src, dst)
    callqa.chmod(0o755)
    with tarfile.open(part2 / "calls.tar.xz") as tar:
        tar.extractall(work, filter="data")
    # --copies N: each call N times under other names (copy 0 keeps its own, which `score`
    # reads), so that start-up and the last straggling call weigh less in the wall time. The
    # last byte differs in each copy: callqa decodes a recording it sees twice only once.
    for wav in sorted((work / "calls").glob("*/*.wav")):
        audio = bytearray(wav.read_bytes())
        for k in range(1, args.copies):
            audio[-1] ^= k
            (wav.parent / f"{wav.stem}-copy{k}.wav").write_bytes(audio)
            audio[-1] ^= k
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, [args.cuda_lib, env.get("LD_LIBRARY_PATH")]))
    machine = {
        "gpu": subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip(),
        "cpu": next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "cores": os.cpu_count(),
    }
    print(json.dumps(machine), flush=True)
    linked = subprocess.run(["ldd", callqa], capture_output=True, text=True, env=env).stdout
    (out / "ldd.txt").write_text(linked)
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,utilization.gpu,memory.used", "--format=csv,noheader",
                            "-lms", "200"], stdout=open(out / "smi.csv", "w"))
    results = {"machine": machine, "model": MODEL, "copies": args.copies, "runs": []}
    try:
        for name, use_gpu, beam, jobs, extra in MATRIX:
            if args.only and name not in args.only:
                continue
            entry = {"name": name, "use_gpu": use_gpu, "beam": beam, "jobs": jobs, "extra": extra,
                     "wall_s": 0.0, "audio_s": 0.0, "stage_s": {}, "texts": {}, "started": time.time()}
            for language in ("zh", "en"):
                config = work / f"{name}-{language}.toml"
                threads = 0 if use_gpu else 2
                config.write_text(f'[asr]\nlanguage = "{language}"\nbeam_size = {beam}\nthreads = {threads}\n'
                                  f"use_gpu = {str(use_gpu).lower()}\n{extra}", encoding="utf-8")
                stats, tables = work / f"{name}-{language}.json", work / f"out-{name}-{language}"
                done = subprocess.run([callqa, "run", "--input", work / "calls" / language, "--out", tables,
                                       "--model", model, "--config", config, "--jobs", str(jobs), "--reprocess",
                                       "--stats", stats], capture_output=True, text=True, env=env)
                # One log for every run: the device call brings back at most 8 files.
                with open(out / "stderr.log", "a") as log:
                    log.write(f"==> {name} {language}: exit {done.returncode}\n{done.stderr[-20_000:]}\n")
                if done.returncode not in (0, 1):
                    entry["error"] = done.stderr[-2000:]
                    break
                summary = json.loads(stats.read_text())
                entry["wall_s"] += summary["wall_s"]
                entry["audio_s"] += summary["audio_s"]
                entry["failed"] = entry.get("failed", 0) + summary["failed"]
                for stage_name, seconds in summary["stage_s"].items():
                    entry["stage_s"][stage_name] = entry["stage_s"].get(stage_name, 0.0) + seconds
                bench_e2e.channel_texts(tables, entry["texts"])
            entry["ended"] = time.time()
            entry["gpu"] = gpu_load(out / "smi.csv", entry["started"], entry["ended"])
            results["runs"].append(entry)
            (out / "results.json").write_text(json.dumps(results, ensure_ascii=False))
            print(f"{name}: {entry['audio_s'] / max(entry['wall_s'], 1e-9):.1f}x real time, wall {entry['wall_s']:.1f} s"
                  + (f", ERROR {entry['error'][-300:]}" if "error" in entry else ""), flush=True)
    finally:
        smi.terminate()


def gpu_load(smi_csv, start, end):
    """Mean GPU utilisation (%) and peak memory (MiB) that nvidia-smi sampled in [start, end]."""
    from datetime import datetime

    util, memory = [], []
    for line in smi_csv.read_text().splitlines():
        try:
            stamp, busy, used = (field.strip() for field in line.split(","))
            if start <= datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp() <= end:
                util.append(float(busy.rstrip(" %")))
                memory.append(float(used.split()[0]))
        except ValueError:
            continue
    return {"util_pct": sum(util) / len(util), "memory_mib": max(memory)} if util else None


def score(args):
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    results = json.loads((args.results / "results.json").read_text(encoding="utf-8"))
    machine = results["machine"]
    print(f"{machine['gpu']}; CPU {machine['cpu']}, {machine['cores']} cores; {results['model']}; "
          f"{len(plan)} calls, {sum(c['duration_s'] for c in plan):.0f} s, each decoded {results.get('copies', 1)} times")
    print("| setting | device | decoding | workers | call-s per wall-s | wall s | ASR s | other stages s "
          "| GPU busy % | GPU MiB | zh CER | en WER |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for entry in results["runs"]:
        if "error" in entry:
            print(f"| {entry['name']} | failed: {entry['error'][-200:]!r} |")
            continue
        if entry.get("failed"):
            print(f"| {entry['name']} | {entry['failed']} calls failed: see stderr.log |")
            continue
        rates = bench_e2e.error_rates(plan, entry["texts"])
        device = "GPU" if entry["use_gpu"] else f"CPU ({machine['cores']} cores)"
        decoding = ("greedy" if entry["beam"] == 1 else f"beam {entry['beam']}") + (
            ", flash attention" if "flash" in entry["extra"] else "")
        # Stage seconds are summed over calls, so with several workers they exceed the wall.
        stages = entry["stage_s"]
        other = sum(v for k, v in stages.items() if k != "asr")
        gpu = entry.get("gpu") or {}
        load = f"{gpu['util_pct']:.0f} | {gpu['memory_mib']:.0f}" if gpu and entry["use_gpu"] else "- | -"
        print(f"| {entry['name']} | {device} | {decoding} | {entry['jobs']} | {entry['audio_s'] / entry['wall_s']:.1f} "
              f"| {entry['wall_s']:.1f} | {stages.get('asr', 0):.1f} | {other:.1f} | {load} "
              f"| {rates['zh']:.3f} | {rates['en']:.3f} |")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("pack")
    s.add_argument("--callqa-cpu", type=Path, required=True, help="assembles the calls")
    s.add_argument("--callqa-cuda", type=Path, required=True)
    s.add_argument("--model", type=Path, required=True)
    s.add_argument("--corpus", type=Path, required=True)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--calls", type=int, default=12)
    s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("stage")
    s.add_argument("--pack", type=Path, required=True)
    s = sub.add_parser("run")
    s.add_argument("--pack", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--cuda-lib", default="/usr/local/cuda-13.0/lib64")
    s.add_argument("--only", nargs="*", help="names from MATRIX")
    s.add_argument("--copies", type=int, default=1, help="decode each call this many times")
    s = sub.add_parser("score")
    s.add_argument("--plan", type=Path, required=True, help="pack's part2/plan.json")
    s.add_argument("--results", type=Path, required=True)
    args = p.parse_args()
    {"pack": pack, "stage": stage, "run": run, "score": score}[args.step](args)


if __name__ == "__main__":
    main()
