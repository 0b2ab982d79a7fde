"""The report's PNG figures (matplotlib, Agg backend: no display needed).

matplotlib comes with the ``analysis`` extra (``pip install "mrovseg[analysis]"``);
:func:`require_matplotlib` says so before any work when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Colours of classes seen in training (base), unseen (novel), and of benchmarks without the split.
BASE, NOVEL, PLAIN = "tab:blue", "tab:orange", "tab:gray"

#: Names of the mIoU keys in figures and tables.
SCORE_NAMES = {"mIoU": "mIoU", "base_mIoU": "base mIoU", "novel_mIoU": "novel mIoU"}

#: Classes in the per-class chart of a large vocabulary: the best and the worst half of this many.
MAX_BARS = 60


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or an ImportError that names the extra to install."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            'The error analysis draws its figures with matplotlib, which is not installed: pip install "mrovseg[analysis]"'
        ) from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def short_name(name: str, width: int = 24) -> str:
    """The first synonym of a class name, cut to ``width`` characters."""
    first = name.split(",")[0].strip()
    return first if len(first) <= width else first[: width - 1] + "…"


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    require_matplotlib().close(fig)
    return path


def per_class_iou_figure(
    iou: np.ndarray, names: Sequence[str], seen_classes: Sequence[int] | None, path: Path
) -> Path:
    """Horizontal bars of per-class IoU (percent), best at the top; NaN classes left out; base / novel
    coloured when ``seen_classes`` is given; more than :data:`MAX_BARS` classes: the best and worst halves."""
    plt = require_matplotlib()
    present = np.flatnonzero(~np.isnan(iou))
    order = present[np.argsort(-iou[present], kind="stable")]
    title = "Per-class IoU"
    if len(order) > MAX_BARS:
        order = np.concatenate([order[: MAX_BARS // 2], order[-MAX_BARS // 2 :]])
        title += f" (best and worst {MAX_BARS // 2} of {len(present)})"
    seen = set(seen_classes) if seen_classes is not None else None
    colours = [PLAIN if seen is None else BASE if c in seen else NOVEL for c in order]
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.22 * max(len(order), 1)))
    ax.barh(np.arange(len(order)), iou[order], color=colours)
    ax.set_yticks(np.arange(len(order)), [short_name(names[c]) for c in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title)
    if seen is not None:
        from matplotlib.patches import Patch

        ax.legend(
            handles=[Patch(color=BASE, label="base (seen)"), Patch(color=NOVEL, label="novel")],
            loc="lower right",
        )
    return _save(fig, path)


def confusion_figure(classes: np.ndarray, shares: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Heat map of :func:`~mrovseg.analysis.tables.frequent_block`: rows ground truth, columns prediction
    (last column "other"), row-normalised percentages written in cells of at least 1 %."""
    plt = require_matplotlib()
    n = len(classes)
    labels = [short_name(names[c], 18) for c in classes]
    side = 2.5 + 0.38 * (n + 1)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(np.arange(n + 1), [*labels, "other"], rotation=90, fontsize=7)
    ax.set_yticks(np.arange(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(f"Confusion of the {n} most frequent classes (% of each row)")
    if n <= 30:
        for (row, col), value in np.ndenumerate(shares):
            if value >= 1:
                ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=6,
                        color="black" if value > 60 else "white")  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, path)


def size_figure(labels: Sequence[str], rows: Sequence[dict[str, float]], path: Path) -> Path:
    """Grouped bars per object-size bin: pixel accuracy and mIoU of the bin's object pixels."""
    plt = require_matplotlib()
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for offset, key, text in ((-0.2, "pixel_acc", "pixels labelled correctly"), (0.2, "mIoU", "mIoU")):
        values = np.array([r[key] for r in rows], dtype=float)
        bars = ax.bar(x + offset, np.nan_to_num(values), width=0.4, label=text)
        ax.bar_label(bars, labels=["–" if np.isnan(v) else f"{v:.1f}" for v in values], fontsize=7)
    ax.set_xticks(x, [f"{label}\n({r['objects']} objects)" for label, r in zip(labels, rows)], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_xlabel("object size (fraction of the image area)")
    ax.set_title("IoU by object size")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def oracle_figure(rows: Sequence[tuple[str, dict[str, float]]], path: Path) -> Path:
    """Bars of mIoU (and base / novel where given) for the model and the two oracles."""
    plt = require_matplotlib()
    keys = [k for k in ("mIoU", "base_mIoU", "novel_mIoU") if k in rows[0][1]]
    x = np.arange(len(rows))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, key in enumerate(keys):
        values = np.array([r[key] for _, r in rows], dtype=float)
        offset = (i - (len(keys) - 1) / 2) * width
        bars = ax.bar(x + offset, np.nan_to_num(values), width=width, label=SCORE_NAMES[key])
        ax.bar_label(bars, labels=["–" if np.isnan(v) else f"{v:.1f}" for v in values], fontsize=7)
    ax.set_xticks(x, [name for name, _ in rows], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Masks or recognition: the model beside its two oracles")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
