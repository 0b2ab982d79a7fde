"""The files of one segmented image: ``<stem>_labels.png``, ``<stem>_overlay.png`` and ``<stem>.json``.

Each file is written to a temporary name and renamed (:func:`atomic_write`), so an interrupted run never
leaves a half-written file; the JSON is written last. The JSON fields are listed in ``mrovseg.predict``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mrovseg.data.image_io import save_label_png
from mrovseg.files import atomic_write
from mrovseg.serving.overlay import palette, render_overlay

__all__ = ["write_outputs"]


def write_outputs(
    result: Any, out_dir: Path, stem: str, alpha: float = 0.5, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Writes ``<stem>_labels.png``, ``<stem>_overlay.png`` and then ``<stem>.json``; returns the JSON payload."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    k = len(result.class_names)
    colours = palette(k)
    legend = result.legend()
    labels_path, overlay_path, json_path = (
        out_dir / f"{stem}_labels.png",
        out_dir / f"{stem}_overlay.png",
        out_dir / f"{stem}.json",
    )
    # render before any file is touched, so a drawing error leaves earlier files of this stem intact
    overlay = render_overlay(result.image, result.labels, legend, colours, alpha)
    atomic_write(labels_path, lambda p: save_label_png(p, result.labels, k))
    atomic_write(overlay_path, lambda p: overlay.save(p))
    timing = dict(result.timing)
    timing["write"] = time.perf_counter() - start
    payload = {
        **(extra or {}),
        "image_size": list(result.image_size),
        "working_size": list(result.working_size),
        "vocabulary": list(result.class_names),
        "pixel_counts": [int(c) for c in result.pixel_counts],
        "class_scores": [float(c) for c in result.class_scores],
        "legend": [
            {
                "index": e.index,
                "name": e.name,
                "pixels": e.pixels,
                "share": e.share,
                "colour": [int(c) for c in colours[e.index]],
            }
            for e in legend
        ],
        "labels_png": labels_path.name,
        "labels_dtype": "uint8" if k <= 255 else "uint16",
        "overlay_png": overlay_path.name,
        "timing": timing,
    }
    atomic_write(json_path, lambda p: p.write_text(json.dumps(payload, indent=2)))
    return payload
