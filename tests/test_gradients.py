"""Every trainable parameter gets a gradient, in every job of every ablation sweep (``conf/sweep/``).

DDP with ``find_unused_parameters=False`` (``trainer=ddp``) stops at the first step when a
trainable parameter takes no part in the loss, e.g. MLP^L at p = 0 with decoupled masks (the
slice-ratio sweep, Table 3). Each job of each sweep is composed on the tiny config (the
``fusion_layers`` sweep names ViT-B/16 layers, so its jobs use a random-weight ViT-B/16), built,
run forward on two 64² images and backward through the set criterion; every parameter with
``requires_grad`` must then hold a gradient. Jobs run with the Algorithm 1 keys; the rows that
change the classifier also with the earlier ``cls_key`` variant. A slow test trains p = 0 under
two gloo processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mrovseg.config import CONF_DIR
from mrovseg.constants import IGNORE_INDEX
from mrovseg.model.criterion import targets_from_semantic
from mrovseg.training.checkpoint import build_config_of, build_module
from tests.helpers import TINY, composed, describe, random_clip_weights, run_entry_point
from tests.test_sweeps import _sweep_params

#: Sweeps whose values only fit the 12-layer ViT-B/16 (the toy CLIP has 3 layers): their jobs run
#: on a random-weight ViT-B/16 (slow: building it takes ~10 s here); the fast set runs the same
#: pattern (with/without the stem, with/without the last layer) on the toy CLIP's layers.
VITB_SWEEPS = {"fusion_layers"}
VITB = ("clip=vitb16", "model.num_cls_blocks=2")
TOY_FUSION = [[1, 2], [1, 2, 3], [0, 1, 2], [0, 1, 2, 3]]


def _sweep_jobs() -> list[tuple[str, tuple[str, ...]]]:
    jobs = []
    for sweep in sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml")):
        for key, values in _sweep_params(sweep).items():
            jobs.extend((sweep, (f"{key}={value}",)) for value in values)
    return jobs


JOBS = _sweep_jobs()

#: Switch combinations beyond the sweeps: p = 0 and p > 0 with either mask variant, no deep supervision.
EXTRA = [
    ("extra", ("model.slice_ratio=0.0", "model.classifier.decoupled=true")),
    ("extra", ("model.slice_ratio=0.0", "model.classifier.decoupled=false")),
    ("extra", ("model.slice_ratio=0.5", "model.classifier.decoupled=false")),
    ("extra", ("model.slice_ratio=0.0", "model.deep_supervision=false")),
    ("extra", ("+components=baseline", "model.deep_supervision=false")),
    ("extra", ("model.classifier.multi_grained=false", "model.classifier.decoupled=true")),
]

#: The earlier keys (global [CLS] too) add no parameter; they are walked on the rows that change the classifier.
CLS_KEY = [
    (s, (*j, "model.classifier.cls_key=true")) for s, j in JOBS + EXTRA if s in ("components", "extra")
]
TOY_JOBS = [("fusion_toy", (f"model.adapter.fusion_layers={f}".replace(" ", ""),)) for f in TOY_FUSION]
FAST = [(s, j) for s, j in JOBS if s not in VITB_SWEEPS] + TOY_JOBS + EXTRA + CLS_KEY
SLOW = [(s, (*VITB, *j)) for s, j in JOBS if s in VITB_SWEEPS]


def test_the_walk_covers_every_sweep() -> None:
    assert {sweep for sweep, _ in FAST + SLOW} >= {p.stem for p in (CONF_DIR / "sweep").glob("*.yaml")}
    assert ("slice_ratio", ("model.slice_ratio=0",)) in FAST
    assert len(JOBS) == len(FAST + SLOW) - len(TOY_JOBS + EXTRA + CLS_KEY) >= 25


def _assert_every_trainable_parameter_gets_a_gradient(tmp_path: Path, overrides: tuple[str, ...]) -> None:
    with composed("train", tmp_path, list(overrides)) as cfg:
        module = build_module(build_config_of(cfg))
    model = module.model.train()
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    labels = torch.randint(0, 3, (2, 64, 64))
    labels[:, :8] = IGNORE_INDEX  # some ignored pixels
    text = model.backbone.encode_vocabulary(["red disc", "blue square", "green ring"], module.templates)
    losses = module.criterion(model(images, text), targets_from_semantic(labels))
    module.criterion.total(losses).backward()
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("model.backbone.") for n, _ in trainable)
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, f"{overrides}: no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)


@pytest.mark.parametrize(("sweep", "job"), FAST, ids=[",".join(j) for _, j in FAST])
def test_every_trainable_parameter_gets_a_gradient(tmp_path: Path, sweep: str, job: tuple[str, ...]) -> None:
    _assert_every_trainable_parameter_gets_a_gradient(tmp_path, job)


@pytest.mark.slow
@pytest.mark.parametrize(("sweep", "job"), SLOW, ids=[",".join(j) for _, j in SLOW])
def test_every_trainable_parameter_gets_a_gradient_on_vitb(
    tmp_path: Path, sweep: str, job: tuple[str, ...]
) -> None:
    _assert_every_trainable_parameter_gets_a_gradient(tmp_path, job)


def test_p0_with_decoupled_masks_has_no_local_mlp(make_model) -> None:
    """At p = 0 there are no slice keys: only MLP^G exists (MLP^L's output could not reach the loss)."""
    decoupled = make_model(slice_ratio=0.0)
    assert decoupled.classifier.local_mlp is None and decoupled.classifier.global_mlp is not None
    single = make_model(slice_ratio=0.0, classifier={"decoupled": False})
    assert single.classifier.local_mlp is not None and single.classifier.global_mlp is None
    sliced = make_model(slice_ratio=0.5)
    # same seed: the parameters p = 0 and p = 0.5 share start from the same values
    for name, param in decoupled.named_parameters():
        torch.testing.assert_close(param, sliced.get_parameter(name), rtol=0, atol=0)


@pytest.mark.slow
def test_p0_trains_under_two_process_ddp(tmp_path: Path) -> None:
    """``trainer=ddp`` (``find_unused_parameters=False``) at p = 0 with decoupled masks: two gloo processes."""
    clip = random_clip_weights(tmp_path / "clip.pt")
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
    args = [f"clip.pretrained={clip}", *TINY, *ddp, "model.slice_ratio=0", "model.classifier.decoupled=true"]
    args += ["test=false", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = run_entry_point("mrovseg.train", args, timeout=600)
    assert proc.returncode == 0, describe(proc)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
