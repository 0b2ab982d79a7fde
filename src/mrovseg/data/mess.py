"""MESS: Multi-domain Evaluation of Semantic Segmentation (Blumenstiel et al., NeurIPS 2023 Datasets and
Benchmarks, arXiv 2306.15521): 22 datasets in 5 domains, read through the ``mess-benchmark`` package's
own catalog (``pip install "mrovseg[mess]"``; detectron2 is not needed).

``import mess.datasets`` registers every dataset in MESS's ``MetadataCatalog`` (detectron2's when that is
installed); from it come the image and label folders under ``$DETECTRON2_DATASETS``, the class names
(``stuff_classes``), the ignore label, the classes of interest and the background class. What the
catalog does not say is taken here as facts from MESS's sources: which catalog entry each dataset is
scored on (``mess/evaluation/mess_evaluation.py``: ISPRS Potsdam and WorldFloods in IRRG, PST900 thermal),
the file endings of images and labels (``mess/datasets/register_*.py``) and each dataset's domain.
The folders are prepared by MESS's own script, ``python -m mess.prepare_all_datasets --dataset_dir <root>``.

Names: ``foodseg103``, ``zerowaste``, … (:data:`MESS_DATASETS`) are single datasets; ``paxray`` stands
for PAXRay's four parts and, in ``python -m mrovseg.eval eval.benchmarks=[mess]``, ``mess`` for every
prepared dataset (:func:`expand_benchmarks`; the others are listed in one log line and skipped).

Metric, as MESS's ``MESSSemSegEvaluator`` (``mess/evaluation/sem_seg_evaluation.py``) defines it: per
dataset ``mIoU`` over all classes (detectron2 v0.6: classes present in the ground truth or the
prediction, as :class:`~mrovseg.training.metrics.SegMetrics`) and ``CoI-mIoU`` (``coi_mIoU`` here), the
same mean over the classes of interest only (MESS leaves out a dataset's background class and
"others"-like classes; the background class plays no other part in scoring). The aggregation follows
``mess/evaluation/mess_evaluation.py``: PAXRay's four parts average into one dataset, PAXRay-4; a
domain's value is the mean over its datasets and ``mean`` the mean over all datasets (not over the
domains), missing values skipped (:func:`domain_means`). MESS's leaderboard reports ``mIoU``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from mrovseg.data.benchmarks import BENCHMARKS, BenchmarkInfo, BenchmarkSpec, SplitLayout, get_benchmark
from mrovseg.data.datasets import DatasetLayoutError

__all__ = [
    "DOMAINS",
    "MESS_DATASETS",
    "METRICS_KEY",
    "MessSpec",
    "benchmark_spec",
    "domain_means",
    "expand_benchmarks",
    "mess_spec",
    "prepared_datasets",
]

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "mrovseg[mess]"'
#: The top-level key of the domain means in ``metrics.json``.
METRICS_KEY = "mess_domains"
#: The per-dataset metrics that :func:`domain_means` averages.
AGGREGATED = ("mIoU", "coi_mIoU")
#: MESS's five domains: our key → MESS's name.
DOMAINS: dict[str, str] = {
    "general": "General",
    "earth_monitoring": "Earth Monitoring",
    "medical": "Medical Sciences",
    "engineering": "Engineering",
    "agriculture_biology": "Agriculture and Biology",
}
PAXRAY_PARTS = ("lungs", "bones", "mediastinum", "diaphragm")


@dataclass(frozen=True)
class MessDataset:
    """One MESS dataset: its catalog entry, title, domain (key of :data:`DOMAINS`) and file endings."""

    catalog_name: str
    title: str
    domain: str
    image_suffix: str = ".jpg"
    label_suffix: str = ".png"


_G, _E, _M, _N, _A = DOMAINS  # general, earth monitoring, medical, engineering, agriculture and biology

#: The 22 datasets (PAXRay as its four parts), in MESS's order.
MESS_DATASETS: dict[str, MessDataset] = {
    "mhp_v1": MessDataset("mhp_v1_sem_seg_test", "MHP v1", _G),
    "foodseg103": MessDataset("foodseg103_sem_seg_test", "FoodSeg103", _G),
    "bdd100k": MessDataset("bdd100k_sem_seg_val", "BDD100K", _G),
    "dark_zurich": MessDataset(
        "dark_zurich_sem_seg_val", "Dark Zurich", _G, "_rgb_anon.png", "_gt_labelIds.png"
    ),
    "atlantis": MessDataset("atlantis_sem_seg_test", "ATLANTIS", _G),
    "dram": MessDataset("dram_sem_seg_test", "DRAM", _G),
    "isaid": MessDataset("isaid_sem_seg_val", "iSAID", _E, ".png"),
    "isprs_potsdam": MessDataset("isprs_potsdam_sem_seg_test_irrg", "ISPRS Potsdam", _E, ".png"),
    "worldfloods": MessDataset("worldfloods_sem_seg_test_irrg", "WorldFloods", _E, ".png"),
    "floodnet": MessDataset("floodnet_sem_seg_test", "FloodNet", _E),
    "uavid": MessDataset("uavid_sem_seg_val", "UAVid", _E, ".png"),
    "kvasir_instrument": MessDataset("kvasir_instrument_sem_seg_test", "Kvasir-Instrument", _M, ".png"),
    "chase_db1": MessDataset("chase_db1_sem_seg_test", "CHASE DB1", _M),
    "cryonuseg": MessDataset("cryonuseg_sem_seg_test", "CryoNuSeg", _M, ".png"),
    **{
        f"paxray_{part}": MessDataset(f"paxray_sem_seg_test_{part}", f"PAXRay-{part.title()}", _M, ".png")
        for part in PAXRAY_PARTS
    },
    "corrosion_cs": MessDataset("corrosion_cs_sem_seg_test", "Corrosion CS", _N, ".jpeg"),
    "deepcrack": MessDataset("deepcrack_sem_seg_test", "DeepCrack", _N),
    "pst900": MessDataset("pst900_sem_seg_test", "PST900", _N, ".png"),
    "zerowaste": MessDataset("zerowaste_sem_seg_test", "ZeroWaste-f", _N, ".PNG", ".PNG"),
    "suim": MessDataset("suim_sem_seg_test", "SUIM", _A),
    "cub_200": MessDataset("cub_200_sem_seg_test", "CUB-200", _A),
    "cwfid": MessDataset("cwfid_sem_seg_test", "CWFID", _A, "_image.png", "_annotation.png"),
}
#: Names that stand for several datasets (``mess`` only the prepared ones, see :func:`expand_benchmarks`).
GROUPS: dict[str, tuple[str, ...]] = {
    "mess": tuple(MESS_DATASETS),
    "paxray": tuple(f"paxray_{part}" for part in PAXRAY_PARTS),
}


def prepare_command(root: str | Path) -> str:
    """MESS's own preparation command for the datasets under ``root``."""
    return f"python -m mess.prepare_all_datasets --dataset_dir {root}"


@dataclass(frozen=True)
class MessSpec(BenchmarkSpec):
    """A :class:`BenchmarkSpec` built from MESS's catalog, plus what MESS scores with.

    Attributes:
        domain: Key of :data:`DOMAINS`.
        catalog_name: The entry of MESS's catalog (``foodseg103_sem_seg_test``).
        classes_of_interest: Class indices of ``coi_mIoU``.
        background_class: The background class, or None (MESS writes the ignore label for none).
    """

    domain: str = ""
    catalog_name: str = ""
    classes_of_interest: tuple[int, ...] = ()
    background_class: int | None = None

    def info(self) -> BenchmarkInfo:
        """The :class:`BenchmarkInfo` with the classes of interest and the domain."""
        return BenchmarkInfo(
            name=self.name,
            class_names=list(self.class_names),
            classes_of_interest=list(self.classes_of_interest),
            domain=self.domain,
        )

    def describe_layout(self, root: str | Path, split: str) -> str:
        lay = self.layout(split)
        return (
            f"expected layout for MESS {self.title} ({self.catalog_name}): images {Path(root) / lay.image_dir}/"
            f"<name>{self.image_suffix} and labels {Path(root) / lay.label_dir}/<name>{self.label_suffix} (ignore "
            f"value {self.ignore_value}, {self.num_classes} classes); prepare it with MESS's own script: "
            f"`{prepare_command(root)}`"
        )


def mess_catalog() -> tuple[Any, Path]:
    """MESS's ``MetadataCatalog`` (the one its datasets registered into) and the root it registered them under.

    Raises:
        ImportError: The ``mess-benchmark`` package is not installed (names the install command).
    """
    try:
        import mess.datasets as registry
    except ImportError as err:
        raise ImportError(
            f"the MESS benchmarks need the mess-benchmark package, which cannot be imported ({err}); "
            f'install it with: {INSTALL_HINT} (or pip install "mess-benchmark>=0.2")'
        ) from err
    for module in vars(registry).values():
        if isinstance(module, ModuleType) and hasattr(module, "MetadataCatalog") and hasattr(module, "_root"):
            return module.MetadataCatalog, Path(module._root)
    raise ImportError(
        f"{registry.__file__} registers no dataset the way mess-benchmark 0.2 does (a register_* module with "
        f"MetadataCatalog and _root); install a supported version: {INSTALL_HINT}"
    )


def _relative(folder: str, catalog_root: Path, what: str, catalog_name: str) -> str:
    rel = os.path.relpath(folder, catalog_root)
    if rel.startswith(".."):
        raise ValueError(
            f"MESS's catalog puts the {what} of {catalog_name} at {folder}, outside its root {catalog_root}; "
            "expected a folder under $DETECTRON2_DATASETS"
        )
    return rel


def mess_spec(name: str) -> MessSpec:
    """The :class:`MessSpec` of one MESS dataset (a key of :data:`MESS_DATASETS`) from MESS's catalog.

    Folders are kept relative to the catalog's root, so any ``data.root`` holding MESS's layout works.
    """
    if name not in MESS_DATASETS:
        raise KeyError(f"unknown MESS dataset {name!r}; known: {list(MESS_DATASETS)}")
    entry = MESS_DATASETS[name]
    catalog, catalog_root = mess_catalog()
    meta = catalog.get(entry.catalog_name).as_dict()
    missing = {"stuff_classes", "image_root", "sem_seg_root", "ignore_label"} - set(meta)
    if missing:
        raise KeyError(
            f"MESS's catalog entry {entry.catalog_name!r} lacks {sorted(missing)}; has {sorted(meta)}"
        )
    layout = SplitLayout(
        _relative(meta["image_root"], catalog_root, "images", entry.catalog_name),
        _relative(meta["sem_seg_root"], catalog_root, "labels", entry.catalog_name),
    )
    class_names = tuple(str(c) for c in meta["stuff_classes"])
    background = meta.get("background_class")  # MESS writes the ignore label (255) where there is none
    if background is not None and not 0 <= int(background) < len(class_names):
        background = None
    return MessSpec(
        name=name,
        title=entry.title,
        class_names=class_names,
        splits={"val": layout, "test": layout},  # MESS scores one split; data.eval_split may say either
        image_suffix=entry.image_suffix,
        label_suffix=entry.label_suffix,
        ignore_value=int(meta["ignore_label"]),
        prepare_script="-m mess.prepare_all_datasets",
        list_from="labels",  # MESS scores the labelled images (CWFID's image folder holds more)
        domain=entry.domain,
        catalog_name=entry.catalog_name,
        classes_of_interest=tuple(int(c) for c in meta.get("classes_of_interest", range(len(class_names)))),
        background_class=None if background is None else int(background),
    )


def benchmark_spec(name: str) -> BenchmarkSpec:
    """A benchmark of the registry (:data:`~mrovseg.data.benchmarks.BENCHMARKS`) or a MESS dataset, by name."""
    if name in MESS_DATASETS:
        return mess_spec(name)
    if name in GROUPS:
        raise KeyError(
            f"{name!r} stands for several MESS datasets; choose it with eval.benchmarks=[{name}] "
            f"(python -m mrovseg.eval), or list them: {list(GROUPS[name])}"
        )
    if name not in BENCHMARKS:
        raise KeyError(
            f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}; the MESS datasets "
            f"{', '.join(MESS_DATASETS)} and groups {', '.join(GROUPS)} (MESS needs {INSTALL_HINT})"
        )
    return get_benchmark(name)


def _is_prepared(root: Path, spec: MessSpec) -> bool:
    lay = spec.layout("test")
    label_dir = root / lay.label_dir
    if not (root / lay.image_dir).is_dir() or not label_dir.is_dir():
        return False
    with os.scandir(label_dir) as entries:
        return any(e.name.endswith(spec.label_suffix) for e in entries)


def prepared_datasets(root: str | Path) -> list[str]:
    """The MESS datasets whose image folder and labels exist under ``root``, in MESS's order; the others
    are named in one warning.

    Raises:
        DatasetLayoutError: None is prepared (says how to prepare them).
    """
    root = Path(str(root)).expanduser()
    found = {name: _is_prepared(root, mess_spec(name)) for name in MESS_DATASETS}
    prepared = [name for name, ok in found.items() if ok]
    missing = [name for name, ok in found.items() if not ok]
    if not prepared:
        raise DatasetLayoutError(
            f"eval.benchmarks=[mess]: none of MESS's 22 datasets is prepared under {root} "
            "(data.root, by default $DETECTRON2_DATASETS). Prepare them with MESS's own script: "
            f"`{prepare_command(root)}` (BDD100K, ISPRS Potsdam, FloodNet and UAVid need a manual download "
            "first, see MESS's DATASETS.md), or choose single datasets, e.g. eval.benchmarks=[foodseg103]."
        )
    if missing and getattr(rank_zero_only, "rank", 0) == 0:  # one line, not one per process
        log.warning(
            "MESS: %d of %d benchmarks (PAXRay in four parts) are not prepared under %s and are skipped: %s "
            "(prepare them with `%s`)",
            len(missing), len(found), root, ", ".join(missing), prepare_command(root),
        )  # fmt: skip
    return prepared


def expand_benchmarks(names: Sequence[str], root: str | Path) -> list[str]:
    """``names`` with ``mess`` replaced by the prepared MESS datasets under ``root`` and ``paxray`` by
    its four parts; a name given twice is kept once, where it first appears."""
    out: list[str] = []
    for name in names:
        if name == "mess":
            out += prepared_datasets(root)
        else:
            out += GROUPS.get(name, (name,))
    return list(dict.fromkeys(out))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _dataset_rows(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{dataset: {metric: value}}`` of the MESS datasets in ``results``, PAXRay's parts as one ``paxray``."""
    rows: dict[str, dict[str, float]] = {}
    parts = [results[n] for n in GROUPS["paxray"] if n in results]
    for name in MESS_DATASETS:
        if name in GROUPS["paxray"]:
            if parts and "paxray" not in rows:
                rows["paxray"] = {
                    m: v
                    for m in AGGREGATED
                    if (v := _mean([p[m] for p in parts if _finite(p.get(m))])) is not None
                }
        elif name in results:
            rows[name] = {m: float(results[name][m]) for m in AGGREGATED if _finite(results[name].get(m))}
    return rows


def _summary(title: str, rows: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    means = {m: _mean([r[m] for r in rows.values() if m in r]) for m in AGGREGATED}
    return {"title": title, **means, "datasets": {name: dict(row) for name, row in rows.items()}}


def domain_means(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """MESS's aggregates of the MESS datasets in ``results`` (``{benchmark: metrics entry}``).

    Returns:
        ``{domain: {"title", "mIoU", "coi_mIoU", "datasets": {name: {"mIoU", "coi_mIoU"}}}}`` for each
        domain with a scored dataset, in MESS's order, then ``"mean"`` over all datasets; PAXRay's parts
        count as one dataset, ``paxray`` (the mean of the parts). Empty without MESS datasets.
    """
    rows = _dataset_rows(results)
    if not rows:
        return {}
    out = {}
    for key, title in DOMAINS.items():
        in_domain = {n: r for n, r in rows.items() if _domain_of(n) == key}
        if in_domain:
            out[key] = _summary(title, in_domain)
    out["mean"] = _summary("Mean", rows)
    return out


def _domain_of(name: str) -> str:
    return MESS_DATASETS[GROUPS["paxray"][0] if name == "paxray" else name].domain


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


@rank_zero_only
def log_domain_means(domains: Mapping[str, Mapping[str, Any]]) -> None:
    """One log line per domain (and the mean) of :func:`domain_means`."""
    for entry in domains.values():
        names = list(entry["datasets"])
        log.info(
            "[MESS %s] mIoU %s  coi_mIoU %s  (%d datasets: %s)",
            entry["title"], _fmt(entry.get("mIoU")), _fmt(entry.get("coi_mIoU")), len(names), ", ".join(names),
        )  # fmt: skip
