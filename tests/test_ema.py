"""``callbacks=ema``: an EMA of the trained weights (Lightning's EMAWeightAveraging) is what validation,
test and the checkpoint's ``state_dict`` hold; checkpoints still carry no CLIP weights, and resume works."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers import describe, run_entry_point

ARGS = [
    "callbacks=ema",
    "trainer.val_check_interval=3",
    "data.num_val=2",
    "data.num_test=2",
    "data.batch_size=2",
    "trainer.enable_progress_bar=false",
    "logger=csv",
]


def test_ema_checkpoint_holds_the_average_without_clip_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_entry_point("mrovseg.train", [*ARGS, "trainer.max_steps=4", f"hydra.run.dir={run}"])
    assert proc.returncode == 0, describe(proc)
    # best.ckpt: written by the validation at step 3, mid-run (at the end of training Lightning copies the
    # average into the model, so last.ckpt's two states are equal)
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    for state in (averaged, raw):
        assert state and not any(k.startswith("model.backbone.") for k in state)
    assert averaged.keys() == raw.keys()
    trained = [k for k in raw if k.startswith("model.adapter.") and raw[k].is_floating_point()]
    assert any(not torch.equal(averaged[k], raw[k]) for k in trained)  # the average is not the raw weights

    proc = run_entry_point(
        "mrovseg.train", [*ARGS, "trainer.max_steps=6", f"hydra.run.dir={run}", "ckpt_path=last"]
    )
    assert proc.returncode == 0, describe(proc)
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 6
    assert not any(k.startswith("model.backbone.") for k in resumed["current_model_state"])
