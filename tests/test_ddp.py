"""Two-process DDP on the CPU (gloo): training and evaluation report what one process reports.

Both settings score every evaluation image exactly once (the evaluation loaders shard without
padding, ``mrovseg.data.sampling``; odd counts: ``tests/test_eval_sharding.py``) and sum the
confusion matrices over processes, so the metrics of a fixed checkpoint must be identical, not
just close.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrovseg.eval import evaluate
from tests.helpers import (
    OVERFIT_MODEL,
    TINY,
    TINY_DATA,
    TINY_TRAINER,
    composed,
    describe,
    random_clip_weights,
    run_entry_point,
    tiny_trained_run,
)

pytestmark = pytest.mark.slow

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


def _one_process_eval(out: Path, overrides: list[str]) -> dict:
    with composed("eval", out, overrides) as cfg:
        evaluate(cfg)
    return json.loads((out / "metrics.json").read_text())


def test_ddp_training_tests_every_image_once_like_one_process(tmp_path: Path) -> None:
    clip = random_clip_weights(tmp_path / "clip.pt")
    common = [f"clip.pretrained={clip}", *TINY, "data.num_test=4"]
    run = tmp_path / "ddp"
    proc = run_entry_point("mrovseg.train", [*common, *DDP, f"hydra.run.dir={run}"], timeout=600)
    assert proc.returncode == 0, describe(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.pt", "ddp"]  # one run directory
    ddp_metrics = json.loads((run / "metrics.json").read_text())
    assert ddp_metrics["toy"]["num_images"] == 4
    # the final test ran on the weights saved last: one process scores them the same
    single = _one_process_eval(
        tmp_path / "single", [*common, f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    )
    assert single == ddp_metrics


def test_ddp_evaluation_of_a_checkpoint_equals_one_process(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    trained, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    common = [f"clip.pretrained={trained / 'clip.pt'}", *TINY, *OVERFIT_MODEL, "data.num_test=4"]
    common.append(f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}")
    proc = run_entry_point("mrovseg.eval", [*common, *DDP, f"hydra.run.dir={tmp_path / 'ddp'}"], timeout=600)
    assert proc.returncode == 0, describe(proc)
    ddp_metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    single = _one_process_eval(tmp_path / "single", common)
    assert single == ddp_metrics
    assert ddp_metrics["toy"]["num_images"] == 4
    assert ddp_metrics["toy"]["pixel_acc"] > 0  # a model that gets pixels right: the comparison is not 0 == 0


#: A small OVSeg stage 1 on the toy CLIP; one stage-1 step, then prompt tuning (the stage boundary at step 1).
OVSEG_TINY = [
    "experiment=ovseg_toy",
    "model.head.dim=32",
    "model.head.mask_dim=16",
    "model.head.num_queries=6",
    "model.head.num_layers=2",
    "model.head.num_heads=2",
    "model.head.ffn_dim=64",
    "model.head.class_hidden=32",
    "criterion.matcher.num_points=256",
    "criterion.num_points=256",
    "module.proposal_steps=1",
    "module.prompt_warmup=1",
]
MGCA_TINY = ["experiment=mgca_toy", "model.dim=16"]


@pytest.mark.parametrize("method", ["ovseg", "mgca"])
def test_methods_train_under_two_process_ddp(tmp_path: Path, method: str) -> None:
    """Issue 21: ``trainer=ddp`` keeps ``find_unused_parameters=False``, so every parameter the optimizer
    holds must get a gradient on every step. OVSeg crosses its stage boundary (step 0: proposal head,
    steps 1-2: mask prompts; it failed on its first step before). MGCA needs nothing: its whole decoder is
    in every step's graph (the zero-initialised output conv makes the first gradients upstream of it 0,
    but present). Both ranks finish 3 steps."""
    import torch

    clip = random_clip_weights(tmp_path / "clip.pt")
    run = tmp_path / "run"
    args = [*(OVSEG_TINY if method == "ovseg" else MGCA_TINY), f"clip.pretrained={clip}", *TINY_DATA]
    args += [*TINY_TRAINER, "trainer.max_steps=3", "trainer.val_check_interval=3", "test=false", *DDP]
    proc = run_entry_point("mrovseg.train", [*args, f"hydra.run.dir={run}"], timeout=600)
    assert proc.returncode == 0, describe(proc)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    if method == "ovseg":  # stage 2 ran (its loss was logged on the two prompt-tuning steps) ...
        logged = next(run.rglob("metrics.csv")).read_text()
        assert "train/prompt_loss" in logged.splitlines()[0]
        # ... and AdamW stepped each group in its own stage only, as in one process: 1 step, then 2
        opt = ckpt["optimizer_states"][0]
        steps = {g["stage"]: {int(opt["state"][i]["step"]) for i in g["params"]} for g in opt["param_groups"]}
        assert steps == {1: {1}, 2: {2}}
