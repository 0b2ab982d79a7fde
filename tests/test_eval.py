"""Tests of the evaluation entry point (``mrovseg.eval``) and of loading checkpoints for evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import numpy as np
import pytest
from PIL import Image

from mrovseg.eval import evaluate
from mrovseg.training.checkpoint import load_module, read_checkpoint
from tests.helpers import (
    METRIC_KEYS,
    OVERFIT_MODEL,
    TINY,
    TINY_DATA,
    TINY_TRAINER,
    composed,
    describe,
    numpy_seg_metrics,
    run_entry_point,
    tiny_trained_run,
)


@pytest.fixture
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """``last.ckpt`` of the session's tiny trained run and the overrides that evaluate it."""
    run, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    ckpt = run / "checkpoints" / "last.ckpt"
    return ckpt, [f"ckpt_path={ckpt}", f"clip.pretrained={run / 'clip.pt'}", *OVERFIT_MODEL]


def test_fast_dev_run_evaluates_one_image(tmp_path: Path, trained: tuple[Path, list[str]]) -> None:
    _, overrides = trained
    with composed("eval", tmp_path, ["debug=fast_dev_run", *overrides]) as cfg:
        results = evaluate(cfg)
    assert list(results) == ["toy"]
    assert set(results["toy"]) == METRIC_KEYS
    assert results["toy"]["num_images"] == 1


def test_metrics_json_agrees_with_the_saved_predictions(
    tmp_path: Path, trained: tuple[Path, list[str]]
) -> None:
    _, overrides = trained
    with composed("eval", tmp_path, [*overrides, "eval.save_predictions=true", "data.num_test=3"]) as cfg:
        evaluate(cfg)
        datamodule = hydra.utils.instantiate(cfg.data)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["toy"]
    assert set(metrics) == METRIC_KEYS and metrics["num_images"] == 3

    samples = list(datamodule.eval_dataset("test"))
    preds = []
    for sample in samples:
        png = Image.open(tmp_path / "predictions" / "toy" / f"{sample['name']}.png")
        assert png.mode == "L"  # uint8: K = 31 ≤ 255
        pred = np.asarray(png).astype(np.int64)
        assert pred.shape == tuple(sample["label"].shape)
        preds.append(pred)
    assert len(list((tmp_path / "predictions" / "toy").iterdir())) == 3
    (bench,) = datamodule.eval_benchmarks
    ref = numpy_seg_metrics(
        preds,
        [s["label"].numpy() for s in samples],
        len(bench.class_names),
        seen=bench.seen_classes,
        regions=[s["regions"]["small"].numpy() for s in samples],
    )
    for key in ("mIoU", "pixel_acc", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU"):
        assert metrics[key] == pytest.approx(ref[key], abs=1e-9), key
    got = [math.nan if v is None else v for v in metrics["per_class_iou"].values()]
    np.testing.assert_allclose(got, ref["per_class_iou"], atol=1e-9)


def test_a_trained_model_needs_a_checkpoint(tmp_path: Path) -> None:
    with composed("eval", tmp_path) as cfg, pytest.raises(ValueError, match="ckpt_path is required"):
        evaluate(cfg)


def test_dense_clip_baseline_needs_no_checkpoint(tmp_path: Path) -> None:
    with composed("eval", tmp_path, ["experiment=dense_clip_toy"], base=TINY_DATA + TINY_TRAINER) as cfg:
        results = evaluate(cfg)
    entry = json.loads((tmp_path / "metrics.json").read_text())["toy"]
    assert set(entry) == METRIC_KEYS and entry["num_images"] == 2
    assert entry["mIoU"] == pytest.approx(results["toy"]["mIoU"])


def test_the_toy_datamodule_serves_only_the_toy_benchmark(
    tmp_path: Path, trained: tuple[Path, list[str]]
) -> None:
    _, overrides = trained
    with (
        composed("eval", tmp_path, [*overrides, "eval.benchmarks=[ade150]"]) as cfg,
        pytest.raises(ValueError, match="only serves the 'toy'"),
    ):
        evaluate(cfg)


# ---------------------------------------------------------------- mismatched checkpoints
def test_load_module_lists_the_keys_of_another_architecture(trained: tuple[Path, list[str]]) -> None:
    ckpt, _ = trained
    build_cfg = read_checkpoint(ckpt)["mrovseg_config"]
    build_cfg["model"]["adapter"]["depth"] = 3  # the checkpoint has 2 adapter blocks
    with pytest.raises(ValueError, match="does not match the configured architecture") as err:
        load_module(ckpt, build_cfg=build_cfg)
    message = str(err.value)
    assert "missing keys" in message and "model.adapter.blocks.2." in message
    assert "unexpected keys" not in message

    build_cfg["model"]["adapter"].update(depth=2, num_queries=9)  # the checkpoint has 16 queries
    with pytest.raises(ValueError, match="shape mismatch") as err:
        load_module(ckpt, build_cfg=build_cfg)
    assert "model.adapter.queries: checkpoint (16, 32) vs model (9, 32)" in str(err.value)


def test_eval_cli_rejects_a_checkpoint_of_another_architecture(
    tmp_path: Path, trained: tuple[Path, list[str]]
) -> None:
    _, overrides = trained
    args = ["model.adapter.depth=3" if a.startswith("model.adapter.depth=") else a for a in TINY]
    args += [*overrides, f"hydra.run.dir={tmp_path}"]
    proc = run_entry_point("mrovseg.eval", args)
    assert proc.returncode != 0, describe(proc)
    assert "does not match the configured architecture" in proc.stderr, describe(proc)
    assert "model.adapter.blocks.2." in proc.stderr, describe(proc)
    assert not (tmp_path / "metrics.json").exists()


def test_region_ensemble_is_an_evaluation_override_also_for_checkpoints_without_it(
    tmp_path: Path, trained: tuple[Path, list[str]]
) -> None:
    from mrovseg.training.checkpoint import CONFIG_KEY, build_config_with_overrides

    ckpt, overrides = trained
    contents = read_checkpoint(ckpt)
    # as every checkpoint written before the switch: no region_ensemble in its stored config
    contents[CONFIG_KEY]["model"].pop("region_ensemble", None)
    with composed("eval", tmp_path, overrides) as cfg:
        plain = build_config_with_overrides(cfg, contents, [], source=ckpt)
        with_crops = build_config_with_overrides(cfg, contents, ["model.region_ensemble=0.2"], source=ckpt)
    assert "region_ensemble" not in plain["model"]  # the model's default applies: off
    assert with_crops["model"]["region_ensemble"] == 0.2
    assert {k: v for k, v in with_crops["model"].items() if k != "region_ensemble"} == plain["model"]


def test_flip_is_an_evaluation_override_that_averages_both_flips(
    tmp_path: Path, trained: tuple[Path, list[str]]
) -> None:
    """``module.flip=true`` reaches a checkpoint written without the switch, and the module's scores are
    the mean of the image's and the mirrored image's (flipped back)."""
    import torch

    from mrovseg.training.checkpoint import CONFIG_KEY, build_config_with_overrides

    ckpt, overrides = trained
    contents = read_checkpoint(ckpt)
    contents[CONFIG_KEY]["module"].pop("flip", None)  # as every checkpoint written before the switch
    with composed("eval", tmp_path, overrides) as cfg:
        plain_cfg = build_config_with_overrides(cfg, contents, [], source=ckpt)
        flip_cfg = build_config_with_overrides(cfg, contents, ["module.flip=true"], source=ckpt)
    assert "flip" not in plain_cfg["module"] and flip_cfg["module"]["flip"] is True
    plain, flipped = load_module(ckpt, build_cfg=plain_cfg), load_module(ckpt, build_cfg=flip_cfg)
    text = plain.text_embeddings(["red circle", "blue square", "background"])
    image = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0))
    a, b = plain.predict_scores(image, text), plain.predict_scores(image.flip(-1), text).flip(-1)
    assert not torch.allclose(a, b, atol=1e-4)  # the model is not mirror-symmetric: the switch matters
    torch.testing.assert_close(flipped.predict_scores(image, text), (a + b) / 2, rtol=1e-5, atol=1e-6)


def test_segmenter_flip_follows_the_checkpoint_unless_asked(trained: tuple[Path, list[str]]) -> None:
    from mrovseg.serving.segmenter import Segmenter

    ckpt, overrides = trained
    clip = next(o.split("=", 1)[1] for o in overrides if o.startswith("clip.pretrained="))
    assert (
        Segmenter.from_checkpoint(ckpt, clip_pretrained=clip).flip is False
    )  # trained with module.flip=false
    assert Segmenter.from_checkpoint(ckpt, clip_pretrained=clip, flip=True).flip is True
