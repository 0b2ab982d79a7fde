"""The model card (``README.md``) of a Hub folder, generated from the run that trained the model.

:func:`find_run` gathers what the run left next to its checkpoint (``<run>/checkpoints/<file>.ckpt``): the
benchmarks' ``metrics.json``, the composed config (``.hydra/config.yaml``: data and schedule) and the
command (``.hydra/hydra.yaml``: the job's name and overrides). :func:`render_card` writes the card: Hugging
Face model-card YAML front matter (``library_name``, ``license``, ``tags``, ``pipeline_tag``), the method
and its paper, the CLIP (named, never included), the training data and schedule, the metrics table, the
command that trained it, how to load it, the files with their checksum, the license and the citation.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrovseg.training.checkpoint import CLIP_KEY, CONFIG_KEY

__all__ = ["RunInfo", "find_run", "render_card"]

#: Method of each model class: name, paper, link.
METHODS: dict[str, tuple[str, str, str]] = {
    "MROVSeg": (
        "MROVSeg",
        "Zhu et al., *MROVSeg: Breaking the Resolution Curse of Vision-Language Models in Open-Vocabulary "
        "Semantic Segmentation*, arXiv 2408.14776",
        "https://arxiv.org/abs/2408.14776",
    ),
    "OVSeg": (
        "OVSeg",
        "Liang et al., *Open-Vocabulary Semantic Segmentation with Mask-adapted CLIP*, CVPR 2023",
        "https://arxiv.org/abs/2210.04150",
    ),
    "MGCA": (
        "MGCA (text-supervised, captions only)",
        "Liu et al., *Multi-Grained Cross-modal Alignment for Learning Open-vocabulary Semantic Segmentation "
        "from Text Supervision*, arXiv 2403.03707",
        "https://arxiv.org/abs/2403.03707",
    ),
}

CITATION = """@article{zhu2024mrovseg,
  title   = {MROVSeg: Breaking the Resolution Curse of Vision-Language Models in Open-Vocabulary Semantic Segmentation},
  author  = {Zhu, Yuanbing and Zhu, Bingke and Chen, Zhen and Xu, Huan and Chen, Yingying and Tang, Ming and Wang, Jinqiao},
  journal = {arXiv preprint arXiv:2408.14776},
  year    = {2024}
}"""

#: The columns of the metrics table, in this order (those present in any benchmark).
METRIC_COLUMNS = {
    "mIoU": "mIoU",
    "base_mIoU": "base mIoU",
    "novel_mIoU": "novel mIoU",
    "hIoU": "hIoU",
    "small_mIoU": "small-object mIoU",
    "pixel_acc": "pixel acc.",
}


@dataclass
class RunInfo:
    """What the training run left next to a checkpoint (empty where it left nothing)."""

    run_dir: Path | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_files: list[Path] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    experiment: str | None = None


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The run directory of a checkpoint: ``<run>`` for ``<run>/checkpoints/<file>``, else its folder."""
    folder = Path(ckpt_path).expanduser().resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def training_command(hydra_dir: Path) -> tuple[str | None, str | None]:
    """``python -m mrovseg.<job> <overrides>`` and the experiment chosen, from a run's ``.hydra/`` (None
    where it holds none)."""
    name, overrides, experiment = None, None, None
    if (hydra_dir / "hydra.yaml").is_file():
        hydra = (yaml.safe_load((hydra_dir / "hydra.yaml").read_text()) or {}).get("hydra") or {}
        name = (hydra.get("job") or {}).get("name")
        overrides = (hydra.get("overrides") or {}).get("task")
        experiment = ((hydra.get("runtime") or {}).get("choices") or {}).get("experiment")
    if overrides is None and (hydra_dir / "overrides.yaml").is_file():
        overrides = yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
    if overrides is None:
        return None, experiment
    words = ["python", "-m", f"mrovseg.{name or 'train'}", *(shlex.quote(str(o)) for o in overrides)]
    return " ".join(words), experiment


def find_run(ckpt_path: str | Path, metrics_files: Sequence[str | Path] | None = None) -> RunInfo:
    """The run of a checkpoint (:func:`run_dir_of`): its ``metrics.json`` (or ``metrics_files``, merged in
    order), its ``.hydra/config.yaml`` (plain YAML, unresolved) and its command."""
    run = run_dir_of(ckpt_path)
    info = RunInfo(run_dir=run)
    files = [Path(m).expanduser() for m in metrics_files] if metrics_files else [run / "metrics.json"]
    for path in files:
        if path.is_file():
            info.metrics.update(json.loads(path.read_text()))
            info.metrics_files.append(path)
        elif metrics_files:
            raise FileNotFoundError(f"metrics file not found: {path}")
    hydra_dir = run / ".hydra"
    if (hydra_dir / "config.yaml").is_file():
        info.config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) or {}
    info.command, info.experiment = training_command(hydra_dir)
    return info


# ------------------------------------------------------------------------------------ pieces
def _short(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1] if target else "?"


def _settings(node: Mapping[str, Any] | None, skip: Sequence[str] = ("_target_", "_partial_")) -> str:
    return ", ".join(f"{k} {v}" for k, v in (node or {}).items() if k not in skip)


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def describe_clip(clip_cfg: Mapping[str, Any], identity: Mapping[str, Any] | None) -> str:
    """The CLIP in words: its name, size and where its weights come from."""
    source = str(clip_cfg.get("pretrained"))
    if clip_cfg.get("pretrained") is None:
        where = "random (pretrained=null): predictions change between loads"
    elif source.startswith("${asset:"):
        where = "the toy CLIP shipped inside mrovseg (nothing to download)"
    else:
        where = f"`{source}` (an open_clip tag or a file; on an offline machine pass a local file, see below)"
    size = f" (width {identity['width']}, depth {identity['depth']})" if identity else ""
    return f"`{clip_cfg.get('model_name')}`{size}, frozen; weights: {where}"


def describe_data(data: Mapping[str, Any]) -> str:
    """The training data of a run's ``data`` config in words."""
    target = _short(data.get("_target_"))
    if target == "ToyDataModule" or "num_shapes" in data:
        objects = int(data.get("num_colours", 0)) * int(data.get("num_shapes", 0))
        return (
            f"the toy world of coloured shapes (`data=toy`, procedurally generated): background + {objects} "
            f"object classes, {data.get('num_novel')} of them held out of training (novel); "
            f"{data.get('num_train')} scenes per epoch, {data.get('train_size')}² crops (world seed {data.get('seed')})"
        )
    if data.get("train_benchmark"):
        crop = f", {data['crop_size']}² crops" if data.get("crop_size") else ""
        return f"{data['train_benchmark']} (`{target}`{crop})"
    return f"`{target}`"


def training_rows(config: Mapping[str, Any], build: Mapping[str, Any], hub: Mapping[str, Any]) -> list[tuple]:
    """``(label, value)`` rows of the training table, from the run's config (when found) and the build config."""
    data, trainer = config.get("data") or {}, config.get("trainer") or {}
    module = build.get("module") or {}
    trained = hub.get("trained") or {}
    rows = [("data", describe_data(data) if data else "not recorded (no .hydra/config.yaml in the run)")]
    step, max_steps = trained.get("global_step"), trainer.get("max_steps")
    steps = f"{step:,} optimizer steps" if isinstance(step, int) else "not recorded"
    if isinstance(max_steps, int) and max_steps != step:
        steps += f" (trainer.max_steps {max_steps:,})"
    if trained.get("epoch") is not None:
        steps += f", ending in epoch {trained['epoch']} (counted from 0)"
    rows.append(("schedule", steps))
    if config.get("global_batch_size"):
        rows.append(("batch", f"{config['global_batch_size']} images per optimizer step"))
    elif data.get("batch_size"):
        devices = trainer.get("devices")
        accumulate = trainer.get("accumulate_grad_batches") or 1
        single = devices in (1, None) and accumulate == 1
        per = f"{data['batch_size']} images per {'optimizer step' if single else 'device'}"
        per += f" × {devices} devices" if devices not in (1, None) else ""
        per += f" × {accumulate} accumulated" if accumulate != 1 else ""
        rows.append(("batch", per))
    optimizer, scheduler = module.get("optimizer") or {}, module.get("scheduler") or {}
    if optimizer:
        rows.append(("optimizer", f"{_short(optimizer.get('_target_'))} ({_settings(optimizer)})"))
    if scheduler:
        rows.append(
            ("learning-rate schedule", f"{_short(scheduler.get('_target_'))} ({_settings(scheduler)})")
        )
    if trainer.get("gradient_clip_val"):
        rows.append(
            (
                "gradient clipping",
                f"{trainer.get('gradient_clip_algorithm', 'norm')} {trainer['gradient_clip_val']}",
            )
        )
    for label, value in (("precision", trainer.get("precision")), ("seed", config.get("seed"))):
        if value is not None:
            rows.append((label, str(value)))
    if trainer.get("accelerator"):
        rows.append(("hardware", f"{trainer['accelerator']}, {trainer.get('devices', 1)} device(s)"))
    return rows


def metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The markdown table of every benchmark of a ``metrics.json`` (percent, two decimals)."""
    metrics = {n: e for n, e in metrics.items() if "num_images" in e}  # not e.g. "mess_domains"
    columns = [k for k in METRIC_COLUMNS if any(k in entry for entry in metrics.values())]
    lines = [
        "| benchmark | " + " | ".join(METRIC_COLUMNS[k] for k in columns) + " | images |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for name, entry in metrics.items():
        values = [f"{entry[k]:.2f}" if isinstance(entry.get(k), (int, float)) else "–" for k in columns]
        lines.append(f"| {name} | " + " | ".join(values) + f" | {entry.get('num_images', '–')} |")
    return lines


def _table(rows: Sequence[tuple[str, str]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {label} | {value} |" for label, value in rows)]


# ------------------------------------------------------------------------------------ card
def render_card(
    hub: Mapping[str, Any],
    run: RunInfo,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    title: str | None = None,
) -> str:
    """The model card of a Hub folder whose ``config.json`` is ``hub`` (see :mod:`mrovseg.serving.hub_format`)."""
    build, identity = hub[CONFIG_KEY], hub.get(CLIP_KEY)
    model_cls = _short((build.get("model") or {}).get("_target_"))
    method, paper, link = METHODS.get(model_cls, (model_cls, "", ""))
    clip_cfg = build.get("clip") or {}
    data = run.config.get("data") or {}
    world = "toy world" if ("num_shapes" in data) else data.get("train_benchmark")
    title = title or " · ".join(
        str(p) for p in (method.split(" (")[0], clip_cfg.get("model_name"), world) if p
    )
    weights = (hub.get("files") or {}).get("model.safetensors") or {}
    ref = repo_id or "<owner>/<name>"
    module = build.get("module") or {}
    templates = module.get("templates")
    short = (build.get("inference") or {}).get("short_side")
    front = {
        "library_name": "mrovseg",
        "license": license,
        "pipeline_tag": "image-segmentation",
        "tags": [
            *dict.fromkeys(["mrovseg", method.split(" ")[0].lower()]),
            "open-vocabulary-segmentation",
            "semantic-segmentation",
            "clip",
        ],
    }
    out = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {title}", ""]
    out += [
        f"{method} for open-vocabulary semantic segmentation: give it an image and any list of class names, and "
        "it labels every pixel with one of them, including names it never saw masks for. Exported with "
        f"mrovseg {hub.get('mrovseg_version', '')}; this repository holds its trained parameters only "
        "(`model.safetensors`) and the config that rebuilds it (`config.json`).",
        "",
        "## Model",
        *_table(
            [
                ("method", f"{method}: {paper} ([paper]({link}))" if paper else method),
                ("CLIP", describe_clip(clip_cfg, identity) + " — not included in this repository"),
                (
                    "trained parameters",
                    f"{weights.get('parameters', 0):,} in {weights.get('tensors', 0)} tensors"
                    f" ({_size(int(weights.get('size', 0)))})",
                ),
                (
                    "inference",
                    f"sliding windows of {module.get('window')}² (overlap {module.get('window_overlap')}), "
                    f"short side {short if short is not None else 'as given (no resize)'}, prompt templates "
                    f"`{templates.get('name') if isinstance(templates, Mapping) else templates}`",
                ),
            ]
        ),
        "",
        "<details><summary>Model config</summary>",
        "",
        "```yaml",
        yaml.safe_dump({"model": build.get("model")}, sort_keys=False).strip(),
        "```",
        "</details>",
        "",
        "## Training",
        *_table(training_rows(run.config, build, hub)),
        "",
    ]
    if run.command:
        out += ["Command that trained it:", "", "```bash", run.command, "```", ""]
    out += ["## Results", ""]
    if run.metrics:
        names = ", ".join(f"`{p.name}`" for p in run.metrics_files)
        out += [f"Measured by mrovseg's evaluation (mIoU etc. in percent; from {names} of the run):", ""]
        out += metrics_table(run.metrics)
        source = (hub.get("trained") or {}).get("source")
        if source and source != "last.ckpt" and run.run_dir and run.metrics_files[0].parent == run.run_dir:
            out += ["", f"(The run's test scored its final weights, `last.ckpt`; these are `{source}`.)"]
    else:
        out += ["No `metrics.json` was found next to the checkpoint's run: not evaluated yet."]
    out += [
        "",
        "## How to use",
        "",
        "With mrovseg installed (it reads `config.json` and `model.safetensors` only, nothing is "
        "unpickled; the files are checked against the sha256 in `config.json`):",
        "",
        "```python",
        "from mrovseg import Segmenter",
        "",
        f'seg = Segmenter.from_pretrained("{ref}")   # or a local folder; revision="<commit|tag>"',
        'result = seg("photo.jpg", vocabulary=["cat", "sofa, couch", "window blind"])',
        "result.labels      # (H, W) class indices",
        "result.legend()    # classes present, largest first",
        "```",
        "",
        "```bash",
        f"python -m mrovseg.predict ckpt_path=hf://{ref} inputs=[photo.jpg] 'vocabulary=[cat,\"sofa, couch\"]'",
        f"python -m mrovseg.demo ckpt_path=hf://{ref}",
        f"python -m mrovseg.eval experiment={run.experiment or '<the experiment it was trained with>'} "
        f"ckpt_path=hf://{ref}"
        + ("" if "num_shapes" in data else " eval.benchmarks=[...] data.root=<datasets>"),
        "```",
        "",
        "Downloads go through `huggingface_hub`'s cache; `HF_HUB_OFFLINE=1` loads from the cache only. CLIP's "
        "weights are not in this repository: the config names them and they are loaded as at training time; "
        "to read them from a file pass `clip_pretrained=/path/to/weights` (CLI: `clip.pretrained=...`).",
        "",
        "## Files",
        "",
        "| file | size | contents |",
        "|---|---|---|",
        f"| `model.safetensors` | {_size(int(weights.get('size', 0)))} | trained parameters, no CLIP "
        f"(sha256 `{weights.get('sha256', '')}`) |",
        "| `config.json` | | build config (clip, model, criterion, module, inference), CLIP identity, checksums |",
        "",
        f"Converted from the training checkpoint `{(hub.get('trained') or {}).get('source')}` by "
        "`python -m mrovseg.hub` (the `.ckpt` stays the format to resume training from).",
        "",
        "## License",
        "",
        f"`{license}` for these weights and mrovseg's code. The frozen CLIP weights are not included and keep "
        "their own license; the training data keeps its terms.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
    ]
    if model_cls != "MROVSeg" and paper:
        out += ["", f"The method itself: {paper} ({link})."]
    return "\n".join(out) + "\n"
