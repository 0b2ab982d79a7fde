"""Times the browser demo: start until the page answers, and segmentations of a 640×480 photo.

    python scripts/bench_demo.py --ckpt outputs/train/runs/<run>/checkpoints/last.ckpt

Starts ``python -m mrovseg.demo ckpt_path=<ckpt>`` as a new process (a fresh interpreter: imports,
checkpoint, CLIP, Gradio), polls the page until it answers HTTP 200, then segments a 640×480 toy-world
scene with the ``toy`` vocabulary through the page's API (``gradio_client``) ``--repeats`` times: the
first answer includes the vocabulary's text encoding (unless the disk cache holds it), the later ones
do not. Prints a JSON summary: seconds to the page, each request's round trip and the Segmenter's own
timing (``prepare``, ``text``, ``inference``, ``upsample``, ``write``, ``total``), with the server
process's CPU seconds (from ``/proc``) for each, which a loaded machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    from mrovseg.demo.session import example_images

    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    photo = example_images(work / "photo", count=1, size=(480, 640))[0]
    cmd = [sys.executable, "-m", "mrovseg.demo", f"ckpt_path={args.ckpt}", f"demo.port={args.port}"]
    cmd += [f"hydra.run.dir={work / 'run'}"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the demo exited with status {proc.returncode}: {' '.join(cmd)}")
            if time.perf_counter() - start > args.timeout:
                raise SystemExit(f"no answer from {url} within {args.timeout} s")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        result: dict = {
            "page_answers_s": round(time.perf_counter() - start, 2),
            "page_answers_cpu_s": round(cpu_seconds(proc.pid), 2),
            "requests": [],
        }
        client = Client(url, verbose=False)
        vocabulary = client.predict("toy", api_name="/benchmark")
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
            *_, files = client.predict(handle_file(photo), vocabulary, 0.5, api_name="/segment")
            trip, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - c0
            saved = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
            timing = {k: round(v, 3) for k, v in saved["timing"].items()}
            result["requests"].append(
                {"round_trip_s": round(trip, 2), "server_cpu_s": round(cpu, 2), "timing": timing}
            )
        result["image_size"] = saved["image_size"]
        result["classes"] = len(saved["vocabulary"])
        result["threads_env"] = os.environ.get("OMP_NUM_THREADS")
        print(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
