"""Driver of scripts/bench-s3.sh: the same calls from and to a local disk, and from and to S3.

Assembles the calls of scripts/bench_shards.py (seed 2027), starts an S3 server on loopback
(moto, as tests/object_storage.rs does), uploads them, then times whole batches into fresh
outputs: local folder -> local folder, and s3:// -> s3://, with `--no-asr` (where storage is
most of the work) and with the default configuration. Prints a Markdown table.
"""
import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).parent))
from bench_shards import build_calls  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--callqa", required=True)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=8)
    args = parser.parse_args()
    folder, audio_s = build_calls(args.callqa, args.corpus, args.work, args.calls)
    # Port 0: the kernel picks a free port and the server holds it from the start.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://127.0.0.1:%d" % server.get_host_and_port()[1]
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
        for bucket in ("bench-in", "bench-out"):
            s3.create_bucket(Bucket=bucket)
        for wav in sorted(folder.glob("*.wav")):
            s3.upload_file(str(wav), "bench-in", f"calls/{wav.name}")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
        rows = []
        for mode, extra in (("--no-asr", ["--no-asr"]), ("default config (beam 5)", [])):
            times = {}
            for where, source, out in (
                ("local disk", str(folder), str(args.work / f"out-{len(rows)}")),
                ("S3 (loopback)", "s3://bench-in/calls", f"s3://bench-out/out-{len(rows)}"),
            ):
                start = time.perf_counter()
                subprocess.run([args.callqa, "run", "--input", source, "--out", out, *extra], check=True,
                               capture_output=True, env=env)
                times[where] = time.perf_counter() - start
                rows.append((mode, where, times[where], times["local disk"] / times[where]))
    finally:
        server.stop()
    print(f"{args.calls} two-channel 8 kHz calls, {audio_s:.0f} s of audio; S3 is moto on loopback")
    print()
    print("| run | recordings and tables on | wall s | call-s per wall-s | vs local disk |")
    print("|---|---|---|---|---|")
    for mode, where, wall, ratio in rows:
        print(f"| {mode} | {where} | {wall:.2f} | {audio_s / wall:.1f} | {ratio:.2f}x |")


main()
