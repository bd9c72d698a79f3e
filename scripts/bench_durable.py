"""Driver of scripts/bench-durable.sh: the durable pipeline against the baseline binary.

Throughput on the bench calls (greedy and beam 5, interleaved, median of --repeat), peak RSS
of the whole process tree (supervisor + ASR workers) by batch size and for a 4-hour file,
and throughput with a competing CPU load. Prints markdown tables.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_e2e  # noqa: E402


def cpu_line():
    model, flags = platform.processor() or "?", set()
    for line in open("/proc/cpuinfo", encoding="utf-8"):
        if line.startswith("model name") and model in ("?", "", "x86_64"):
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    simd = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} vCPUs, {' '.join(simd)}"


def tree_rss_kb(root):
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat", encoding="utf-8").read()
                parents[int(name)] = int(stat[stat.rfind(")") + 1:].split()[1])
            except OSError:
                pass
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in open(f"/proc/{pid}/status", encoding="utf-8"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def sampled(cmd, timeout=None, rss=True):
    """Run cmd; wall seconds, peak RSS of its process tree (MB; 0 without `rss`, which keeps
    the sampler's own CPU use out of throughput runs), stdout, exit code."""
    log = open(os.devnull, "w")
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    peak = 0
    while p.poll() is None:
        if rss:
            peak = max(peak, tree_rss_kb(p.pid))
        if timeout and time.perf_counter() - start > timeout:
            p.kill()
            break
        time.sleep(0.05 if rss else 0.01)
    out = p.stdout.read()
    p.wait()
    return time.perf_counter() - start, peak / 1024, out, p.returncode


def link_calls(folder, targets):
    """A folder of symlinks, name -> recording, so one recording can stand for many calls."""
    folder.mkdir(exist_ok=True)
    for name, target in targets:
        link = folder / name
        if not link.exists():
            link.symlink_to(target)
    return folder


def run(binary, model, folder, out, config, extra=(), timeout=None, rss=True):
    cmd = [str(binary), "run", "--input", str(folder), "--out", str(out), "--config", str(config), "--model", str(model),
           "--reprocess", *extra]
    return sampled(cmd, timeout, rss)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--new", type=Path, required=True)
    p.add_argument("--old", type=Path, required=True)
    p.add_argument("--old-label", default="baseline")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--parts", default="throughput,memory,contention", help="comma-separated subset to run")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    # bench_e2e builds the same call set as scripts/bench.sh.
    ns = argparse.Namespace(corpus=args.corpus, work=args.work, bleed_db=None, callqa=args.new)
    plan = bench_e2e.build_calls(ns)
    audio_s = sum(c["duration_s"] for c in plan)
    calls = args.work / "calls"
    everything = link_calls(args.work / "all", [(Path(c["wav"]).name, c["wav"]) for c in plan])
    print(f"CPU: {cpu_line()}")
    print(f"{len(plan)} two-channel 8 kHz calls, {audio_s:.1f} s (the scripts/bench.sh set)\n")

    engines = [("durable (this tree)", args.new), (args.old_label, args.old)]
    if "throughput" in parts:
        throughput(args, engines, everything, audio_s)
    if "memory" in parts:
        memory(args, engines, plan)
    if "contention" in parts:
        contention(args, engines, plan)


def throughput(args, engines, everything, audio_s):
    print("| binary | decoding | wall s, median [range] | call-s per wall-s | ratio to baseline |")
    print("|---|---|---|---|---|")
    for beam in (1, 5):
        config = args.work / f"beam{beam}.toml"
        config.write_text(f"[asr]\nbeam_size = {beam}\nthreads = 2\n", encoding="utf-8")
        walls = {label: [] for label, _ in engines}
        for i in range(args.repeat):
            for label, binary in engines:
                wall, _, _, code = run(binary, args.model, everything, args.work / f"tp-{beam}-{label[:3]}", config, rss=False)
                assert code == 0, f"{label} failed"
                walls[label].append(wall)
        base = statistics.median(walls[args.old_label])
        for label, _ in engines:
            w = sorted(walls[label])
            m = statistics.median(w)
            print(f"| {label} | {'greedy' if beam == 1 else 'beam 5'} | {m:.1f} [{w[0]:.1f}-{w[-1]:.1f}] | {audio_s / m:.2f} | {base / m:.3f} |")


def memory(args, engines, plan):
    print("\nPeak RSS of the process tree (supervisor + workers), MB:\n")
    print("| binary | run | calls | wall s | peak RSS MB |")
    print("|---|---|---|---|---|")
    acoustic = args.work / "acoustic.toml"
    acoustic.write_text("", encoding="utf-8")
    for n in (10, 100, 1000):
        folder = link_calls(args.work / f"batch-{n}", [(f"c{k:04d}.wav", plan[k % len(plan)]["wav"]) for k in range(n)])
        for label, binary in engines:
            wall, peak, _, code = run(binary, args.model, folder, args.work / f"rss-{n}-{label[:3]}", acoustic, ["--no-asr"])
            print(f"| {label} | --no-asr | {n} | {wall:.1f} | {peak:.0f} |")
    greedy = args.work / "beam1.toml"
    greedy.write_text("[asr]\nbeam_size = 1\nthreads = 2\n", encoding="utf-8")
    for label, binary in engines:
        wall, peak, _, code = run(binary, args.model, args.work / "batch-10", args.work / f"rss-asr-{label[:3]}", greedy)
        print(f"| {label} | greedy ASR | 10 | {wall:.1f} | {peak:.0f} |")

    # A 4-hour two-channel 8 kHz PCM16 recording: the bench calls tiled.
    long_dir = args.work / "long"
    long_dir.mkdir(exist_ok=True)
    long_wav = long_dir / "four_hours.wav"
    if not long_wav.exists():
        frames = b"".join(wave.open(c["wav"], "rb").readframes(10**9) for c in plan)
        with wave.open(str(long_wav), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(8000)
            need = 4 * 3600 * 8000 * 4
            while need > 0:
                chunk = frames[:need]
                w.writeframes(chunk)
                need -= len(chunk)
    size_mb = long_wav.stat().st_size / 2**20
    for label, binary in engines:
        wall, peak, _, code = run(binary, args.model, long_dir, args.work / f"long-{label[:3]}", acoustic, ["--no-asr"])
        print(f"| {label} | --no-asr, one 4 h file ({size_mb:.0f} MB) | 1 | {wall:.1f} | {peak:.0f} |")


def contention(args, engines, plan):
    """Throughput with one busy loop per core competing for the machine."""
    print("\nWith a competing CPU load (one busy process per core), greedy, default threads:\n")
    print("| binary | wall s | call-s per wall-s |")
    print("|---|---|---|")
    two = link_calls(args.work / "contended", [(Path(c["wav"]).name, c["wav"]) for c in plan[:2]])
    two_s = sum(c["duration_s"] for c in plan[:2])
    config = args.work / "contended.toml"
    config.write_text("[asr]\nbeam_size = 1\n", encoding="utf-8")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        time.sleep(1)
        for label, binary in engines:
            wall, _, _, code = run(binary, args.model, two, args.work / f"cont-{label[:3]}", config, timeout=900, rss=False)
            note = "" if code in (0, 1) else " (stopped at the 900 s limit)"
            print(f"| {label} | {wall:.1f}{note} | {two_s / wall:.2f} |")
    finally:
        for h in hogs:
            h.kill()
    print(f"\n({len(plan[:2])} calls, {two_s:.1f} s of audio)")


if __name__ == "__main__":
    main()
