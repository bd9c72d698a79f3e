"""Driver of scripts/bench.sh: builds the call set, runs both engines, prints the table."""
import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds

ZH = [
    "wenet-e2e__wenet/aishell-BAC009S0724W0121.wav",
    "FireRedTeam__FireRedASR/BAC009S0764W0121.wav",
    "xingchensong__S3Tokenizer/BAC009S0764W0122.wav",
    "PaddlePaddle__PaddleSpeech/zh.wav",
    "modelscope__FunASR/asr_example.wav",
    "yeyupiaoling__Whisper-Finetune/test.wav",
    "FireRedTeam__FireRedASR/TEST_NET_Y0000000000_-KTKHdZ2fb8_S00000.wav",
    "k2-fsa__sherpa/funasr-nano_far_2.wav",
    "wenet-e2e__wenet/NST_example_ID001.wav",
    "wenet-e2e__wenet/NST_example_ID002.wav",
    "k2-fsa__sherpa/funasr-nano_dia_hunan.wav",
    "k2-fsa__sherpa/funasr-nano_far_5.wav",
]
EN = [
    "wenet-e2e__wenet/librispeech-1995-1837-0001.wav",
    "k2-fsa__sherpa/1089-134686-0001.wav",
    "k2-fsa__sherpa/1221-135766-0001.wav",
    "k2-fsa__sherpa/1221-135766-0002.wav",
    "ggerganov__whisper.cpp/jfk.wav",
    "k2-fsa__icefall/Lab41-SRI-VOiCES-src-sp0307-ch127535-sg0042.wav",
]

FW = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from faster_whisper import WhisperModel, decode_audio
ct2, threads, workers, beam, plan = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5])
options = json.loads(sys.argv[6])
# num_workers: that many transcriptions run at once, each on cpu_threads threads.
model = WhisperModel(ct2, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=workers)
start = time.perf_counter()
channels = []
for call in plan:
    left, right = decode_audio(call["wav"], split_stereo=True)
    channels += [(call, "agent", left), (call, "customer", right)]
def transcribe(channel):
    call, speaker, audio = channel
    segments, _ = model.transcribe(audio, language=call["language"], beam_size=beam, vad_filter=True, **options)
    return call["id"] + "/" + speaker, "".join(s.text for s in segments)
with ThreadPoolExecutor(workers) as pool:
    out = dict(pool.map(transcribe, channels))
print(json.dumps({"wall_s": time.perf_counter() - start, "text": out}))
"""

# faster-whisper's defaults decode a little differently from callqa: each window is prompted
# with the text before it (callqa: none, `no_context`), and temperature fallback samples 5
# candidates per temperature (callqa: 1). "matched" makes both as callqa's.
PEER_OPTIONS = {
    "defaults": {},
    "matched": {"condition_on_previous_text": False, "best_of": 1},
}


def measured(cmd):
    """Run cmd in a child that reports its own children's peak RSS (kB)."""
    wrapper = "import resource,subprocess,sys;r=subprocess.run(sys.argv[1:],capture_output=True,text=True);" \
        "sys.stderr.write(r.stderr);print(r.stdout);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);sys.exit(r.returncode)"
    result = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    if result.returncode not in (0, 1):
        sys.exit(f"failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")
    *out, rss = result.stdout.rstrip().split("\n")
    return "\n".join(out), int(rss) / 1024


def clip_rows(corpus):
    """MANIFEST.tsv's rows by file, read once."""
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def clip_row(rows, file):
    if file not in rows:
        raise SystemExit(f"{file} not in MANIFEST.tsv")
    return rows[file]


def edits(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a):
        cur = [i + 1]
        for j, y in enumerate(b):
            cur.append(min(prev[j] + (x != y), prev[j + 1] + 1, cur[j] + 1))
        prev = cur
    return prev[-1]


def units(text, language):
    # Imported here: bench_gpu.py imports this module on a machine without zhconv.
    import zhconv

    text = zhconv.convert(text, "zh-cn").lower()
    if language == "zh":
        return [c for c in text if c.isalnum()]
    return ["".join(c for c in w if c.isalnum() or c == "'") for w in text.split() if any(c.isalnum() for c in w)]


# Every clip with a transcript of the whole clip, for --seed: the fixed set's clips and those
# it leaves out (long, far-field, noisy, fast), drawn with replacement.
DRAWN_ZH = ZH + [
    "FireRedTeam__FireRedASR/IT0011W0001.wav",
    "FireRedTeam__FireRedASR/TEST_MEETING_T0000000001_S00000.wav",
    "k2-fsa__sherpa/funasr-nano_far_3.wav",
    "k2-fsa__sherpa/funasr-nano_far_4.wav",
    "k2-fsa__sherpa/qwen3-asr_noise2.wav",
    "k2-fsa__sherpa/qwen3-asr_fast1.wav",
    "k2-fsa__sherpa/qwen3-asr_raokouling.wav",
    "modelscope__FunASR/paraformer_example_1.wav",
    "modelscope__FunASR/paraformer_example_2.wav",
]
DRAWN_EN = EN + ["k2-fsa__sherpa/funasr-nano_noise_en.wav"]


def fixed_set(rng):
    """The set measured since issue 6: 3 Mandarin calls from 4 clips each, 1 English from 6."""
    for language, pool, count in (("zh", ZH, 3), ("en", EN, 1)):
        pool = pool[:]
        rng.shuffle(pool)
        per_call = len(pool) // count
        for k in range(count):
            yield language, k, pool[k * per_call:(k + 1) * per_call]


def drawn_set(rng, calls):
    """`calls` calls, two Mandarin to one English, of 4-9 clips each drawn from every clip."""
    for k in range(calls):
        language, pool = ("en", DRAWN_EN) if k % 3 == 2 else ("zh", DRAWN_ZH)
        yield language, k, [rng.choice(pool) for _ in range(rng.randint(4, 9))]


def build_calls(args):
    rng = random.Random(2026 if args.seed is None else args.seed)
    rows = clip_rows(args.corpus)
    plan = []
    calls = fixed_set(rng) if args.seed is None else drawn_set(rng, args.calls)
    for language, k, clips in calls:
        turns, t = [], 0.5
        for i, clip in enumerate(clips):
            speaker = "agent" if i % 2 == 0 else "customer"
            row = clip_row(rows, clip)
            turns.append({"speaker": speaker, "clip": clip, "start_s": round(t, 2), "text": row["reference_transcript"]})
            t += float(row["duration_s"]) + rng.choice([0.6, 1.0, 1.5, 6.0])
        call_id = f"{language}{k}"
        folder = args.work / "calls" / language
        folder.mkdir(parents=True, exist_ok=True)
        spec = folder.parent / f"{call_id}.toml"
        lines = ["sample_rate_hz = 8000", 'codec = "pcm_s16"', "tail_s = 1.0", ""]
        if args.bleed_db is not None:
            lines.insert(0, f"bleed_db = {args.bleed_db}")
        for turn in turns:
            lines += ["[[turns]]", f'speaker = "{turn["speaker"]}"', f'clip = "{turn["clip"]}"', f"start_s = {turn['start_s']}", f"text = {json.dumps(turn['text'], ensure_ascii=False)}", ""]
        spec.write_text("\n".join(lines), encoding="utf-8")
        wav = folder / f"{call_id}.wav"
        subprocess.run([args.callqa, "assemble", "--spec", spec, "--clips", args.corpus, "--out", wav], check=True, capture_output=True)
        truth = json.loads(wav.with_suffix(".truth.json").read_text(encoding="utf-8"))
        refs = {s: " ".join(t["text"] for t in truth["turns"] if t["speaker"] == s) for s in ("agent", "customer")}
        plan.append({"id": call_id, "language": language, "wav": str(wav), "duration_s": truth["duration_s"], "refs": refs})
    return plan


def error_rates(plan, texts):
    rates = {}
    for language in ("zh", "en"):
        total = errs = 0
        for call in (c for c in plan if c["language"] == language):
            for speaker, ref in call["refs"].items():
                r, h = units(ref, language), units(texts.get(f"{call['id']}/{speaker}", ""), language)
                total += len(r)
                errs += edits(r, h)
        rates[language] = errs / max(total, 1)
    return rates


def run_callqa(args, plan, beam, jobs, threads):
    wall = 0.0
    rss = 0.0
    stages = {}
    texts = {}
    for language in ("zh", "en"):
        out = args.work / f"out-{beam}-{jobs}-{language}"
        config = args.work / f"callqa-{beam}-{jobs}-{language}.toml"
        config.write_text(f'[asr]\nlanguage = "{language}"\nbeam_size = {beam}\nthreads = {threads}\n{args.extra_config}\n', encoding="utf-8")
        stats = args.work / f"stats-{beam}-{jobs}-{language}.json"
        _, peak = measured([str(args.callqa), "run", "--input", str(args.work / "calls" / language), "--out", str(out),
                            "--config", str(config), "--jobs", str(jobs), "--reprocess", "--stats", str(stats)])
        summary = json.loads(stats.read_text())
        # The default weights depend on the build (bf16 where ggml has AVX-512 BF16): name them.
        args.callqa_model = summary["model"]
        wall += summary["wall_s"]
        rss = max(rss, peak)
        for k, v in summary["stage_s"].items():
            stages[k] = stages.get(k, 0.0) + v
        channel_texts(out, texts)
    return wall, rss, stages, texts


def channel_texts(tables, texts):
    """Appends each channel's utterances under `tables`, in time order, to texts["call_id/speaker"]."""
    rows = ds.dataset(tables / "utterances", format="parquet", partitioning="hive").to_table().to_pylist()
    for row in sorted(rows, key=lambda r: r["start_s"]):
        key = f"{row['call_id']}/{row['speaker']}"
        texts[key] = texts.get(key, "") + " " + row["text"]


def rss_by_batch_size(args, plan, copies):
    """Peak RSS of one greedy run over the Mandarin calls, and over `copies` times as many."""
    peaks = []
    config = args.work / "callqa-rss.toml"
    config.write_text('[asr]\nlanguage = "zh"\nbeam_size = 1\n', encoding="utf-8")
    for n in (1, copies):
        folder = args.work / f"rss-{n}"
        folder.mkdir(exist_ok=True)
        calls = [c for c in plan if c["language"] == "zh"]
        for k in range(n):
            for call in calls:
                link = folder / f"{call['id']}-{k}.wav"
                if not link.exists():
                    link.symlink_to(call["wav"])
        _, peak = measured([str(args.callqa), "run", "--input", str(folder), "--out", str(args.work / f"rss-out-{n}"),
                            "--config", str(config), "--reprocess"])
        peaks.append((n * len(calls), peak))
    return peaks


def run_fw(args, plan, beam, workers, threads):
    light = [{k: c[k] for k in ("id", "language", "wav")} for c in plan]
    options = PEER_OPTIONS[args.peer]
    out, rss = measured([sys.executable, "-c", FW, str(args.ct2), str(threads), str(workers), str(beam), json.dumps(light), json.dumps(options)])
    result = json.loads(out.strip().split("\n")[-1])
    return result["wall_s"], rss, result["text"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--callqa", type=Path, required=True)
    p.add_argument("--ct2", type=Path, required=True)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bleed-db", type=float, default=None, help="leak each channel into the other at this level (crosstalk)")
    p.add_argument("--repeat", type=int, default=3, help="runs per engine and setting; the table shows the median")
    p.add_argument("--seed", type=int, default=None, help="draw --calls calls from every clip with this seed instead of the fixed set")
    p.add_argument("--calls", type=int, default=12, help="calls to draw with --seed")
    p.add_argument("--extra-config", default="", help="TOML lines added to callqa's [asr] section")
    p.add_argument("--peer", choices=tuple(PEER_OPTIONS), default="matched",
                   help="faster-whisper decoding as callqa does, or with its own defaults (see PEER_OPTIONS)")
    p.add_argument("--settings", choices=("both", "one", "split"), default="both",
                   help="one worker on all threads, 2 workers sharing them, or both")
    args = p.parse_args()
    plan = build_calls(args)
    audio_s = sum(c["duration_s"] for c in plan)
    bleed = "no crosstalk" if args.bleed_db is None else f"crosstalk at {args.bleed_db:g} dB"
    print(f"{len(plan)} two-channel 8 kHz calls, {audio_s:.1f} s of call audio ({2 * audio_s:.1f} s of channel audio), {bleed}; threads {args.threads}")
    rows = []

    def ours(beam, jobs, threads):
        wall, rss, stages, texts = run_callqa(args, plan, beam, jobs, threads)
        return wall, rss, error_rates(plan, texts), (stages, wall)

    def peer(beam, workers, threads):
        wall, rss, texts = run_fw(args, plan, beam, workers, threads)
        return wall, rss, error_rates(plan, texts), None

    def summary(results):
        """Median wall (faster-whisper's temperature fallback samples at random, so its time
        and transcripts vary run to run), its range, max RSS, mean error rates."""
        walls = sorted(r[0] for r in results)
        mean = {k: sum(r[2][k] for r in results) / len(results) for k in results[0][2]}
        return statistics.median(walls), (walls[0], walls[-1]), max(r[1] for r in results), mean, results[-1][3]

    half = max(args.threads // 2, 1)
    ratios = []

    def side_by_side(beam, workers, threads, ours_label, peer_label, setting):
        # Interleaved, so that a slow spell of the machine hits both engines alike.
        pairs = [(ours(beam, workers, threads), peer(beam, workers, threads)) for _ in range(args.repeat)]
        mine, them = summary([a for a, _ in pairs]), summary([b for _, b in pairs])
        rows.append((f"callqa {args.callqa_model.removeprefix('ggml-').replace('-', ' ')}", beam, ours_label, *mine))
        rows.append((f"faster-whisper base int8 + VAD{', matched' if args.peer == 'matched' else ''}", beam, peer_label, *them))
        ratios.append((beam, setting, them[0] / mine[0]))

    if args.settings in ("both", "one"):
        for beam in (1, 5):
            side_by_side(beam, 1, args.threads, "--jobs 1", "1", f"one worker, {args.threads} threads")
    # Each engine with its cores split between two transcriptions at once.
    if args.settings in ("both", "split"):
        for beam in (1, 5):
            side_by_side(beam, 2, half, f"--jobs 2 x {half} thread", f"2 x {half} thread", f"2 workers x {half} thread each")
    print(f"\nmedian of {args.repeat} runs each (range in brackets)")
    print("\n| engine | decoding | workers | wall s | call-s per wall-s | zh CER | en WER | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for engine, beam, workers, wall, (low, high), rss, rates, _ in rows:
        decoding = "greedy" if beam == 1 else f"beam {beam}"
        print(f"| {engine} | {decoding} | {workers} | {wall:.1f} [{low:.1f}-{high:.1f}] | {audio_s / wall:.2f} | {rates['zh']:.3f} | {rates['en']:.3f} | {rss:.0f} |")
    peaks = rss_by_batch_size(args, plan, 4)
    print("\npeak RSS by batch size, callqa greedy --jobs 1: " + ", ".join(f"{n} calls {mb:.0f} MB" for n, mb in peaks))
    for beam, setting, ratio in sorted(ratios, key=lambda r: r[0]):
        print(f"\nratio callqa / faster-whisper throughput, {'greedy' if beam == 1 else 'beam 5'}, {setting}: {ratio:.2f}")
    print("\ncallqa seconds per stage (one run; with --jobs 2 the stages add up over both workers):")
    for engine, beam, workers, _, _, _, _, timing in rows:
        if timing:
            stages, wall = timing
            shares = ", ".join(f"{k} {v:.2f} s ({100 * v / wall:.1f}%)" for k, v in stages.items())
            print(f"callqa {'greedy' if beam == 1 else 'beam 5'} {workers}: wall {wall:.2f} s; {shares}")

if __name__ == "__main__":
    main()
