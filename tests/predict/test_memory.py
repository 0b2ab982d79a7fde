"""Peak memory of a large image does not grow with its area beyond a few bytes per pixel.

What is measured: the peak resident set size (``ru_maxrss``) of a fresh Python process that segments a
300×200 image twice and then a 3000×2000 image (both with ``short_side=128``, so the sliding windows
run on the same 128×192 working image) and writes the three output files of each. The growth of the
peak between the small and the large image is what the large image costs at its own resolution: the
int64 label map (8 B/px), the overlay (~10 B/px), the PNG encoders and the row bands of
``upsample_argmax``. A ``(K, H, W)`` float32 score map at the original resolution would alone cost
``4·K`` bytes per pixel (128 B/px for the K = 32 used here, 768 MB); the test allows 64 B/px
(384 MB) and measures about 20-30 B/px. The peak RSS is read in a child process because it is a
process-wide high-water mark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mrovseg.constants import REPO_ROOT

PROBE = """
import json, resource, sys
import numpy as np, torch
from pathlib import Path
from mrovseg.serving.outputs import write_outputs
from mrovseg.serving.segmenter import Segmenter

torch.set_num_threads(1)
ckpt, k, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
seg = Segmenter.from_checkpoint(ckpt, short_side=128)
vocab = [f"thing {i}" for i in range(k)]
big = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
small = np.ascontiguousarray(big[::10, ::10])
peaks = {}
for name, image in (("small", small), ("small_again", small), ("big", big)):
    result = seg.segment(image, vocab, return_scores=False)
    assert result.working_size == (128, 192) and result.labels.shape == image.shape[:2]
    write_outputs(result, out, name)
    del result
    peaks[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("PEAKS " + json.dumps(peaks))
"""


def test_peak_memory_of_a_3000x2000_image_is_bounded(tiny_ckpt: Path, tmp_path: Path) -> None:
    k, height, width = 32, 2000, 3000
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_ckpt), str(k), str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    peaks = json.loads(proc.stdout.split("PEAKS ", 1)[1])
    growth = peaks["big"] - peaks["small_again"]
    per_pixel = growth / (height * width)
    full_map = 4 * k  # bytes per pixel of one (K, H, W) float32 score map at full resolution
    assert per_pixel < full_map / 2, f"peak grew by {growth / 2**20:.0f} MiB ({per_pixel:.1f} B/px)"
    assert (tmp_path / "big_labels.png").is_file() and (tmp_path / "big.json").is_file()
