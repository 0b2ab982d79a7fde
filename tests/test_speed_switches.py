"""Memory and speed switches give the same results: adapter checkpointing, torch.compile, fused AdamW.

Also: ``trainer.compile`` is accepted by the training entry point (and not passed to Lightning),
and the GPU experiments load data with workers, pinned memory and persistent workers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mrovseg.model.mrovseg.model import MROVSeg
from mrovseg.training.speed import TRAINABLE_PARTS, adamw_options, compile_trainable
from tests.helpers import compose_with_hydra, composed


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 64, 64, generator=g)
    text = torch.nn.functional.normalize(torch.randn(4, 64, generator=g), dim=-1)
    return images, text


def _loss(out: dict) -> torch.Tensor:
    """A scalar touching every output (final and deep-supervision logits and masks)."""
    parts = [out, *out["aux_outputs"]]
    return sum(p["pred_logits"].square().mean() + p["pred_masks"].sigmoid().mean() for p in parts)


def _grads(model: MROVSeg) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_adapter_checkpointing_gives_the_same_outputs_and_gradients(
    make_model: Callable[..., MROVSeg],
) -> None:
    images, text = _batch()
    results = []
    for checkpoint in (False, True):
        model = make_model(adapter={"checkpoint": checkpoint}).train()
        assert model.adapter.checkpoint is checkpoint
        out = model(images, text)
        _loss(out).backward()
        results.append((out, _grads(model)))
    (plain, g_plain), (ckpt, g_ckpt) = results
    assert len(plain["aux_outputs"]) == 1  # deep supervision is on (tiny adapter: depth 2)
    torch.testing.assert_close(ckpt["pred_logits"], plain["pred_logits"], rtol=0, atol=0)
    torch.testing.assert_close(ckpt["pred_masks"], plain["pred_masks"], rtol=0, atol=0)
    assert set(g_ckpt) == set(g_plain) and any(n.startswith("adapter.blocks") for n in g_plain)
    torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-6, atol=1e-7)


def test_adapter_checkpointing_is_off_without_gradients(make_model: Callable[..., MROVSeg]) -> None:
    model = make_model(adapter={"checkpoint": True}).eval()
    reference = make_model(adapter={"checkpoint": False}).eval()
    images, text = _batch(1)
    with torch.no_grad():
        torch.testing.assert_close(model(images, text), reference(images, text), rtol=0, atol=0)


def _compiled_matches_eager(
    make_model: Callable[..., MROVSeg], backend: str, parts: tuple[str, ...] = TRAINABLE_PARTS
) -> None:
    torch._dynamo.reset()
    eager = make_model().train()
    compiled = copy.deepcopy(eager)
    assert compile_trainable(compiled, parts, backend=backend) == list(parts)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints keep their keys
    images, text = _batch(2)
    out_e, out_c = eager(images, text), compiled(images, text)
    _loss(out_e).backward()
    _loss(out_c).backward()
    torch.testing.assert_close(out_c["pred_logits"], out_e["pred_logits"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_c["pred_masks"], out_e["pred_masks"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_grads(compiled), _grads(eager), rtol=1e-3, atol=1e-5)


def test_compiled_decoder_matches_eager(make_model: Callable[..., MROVSeg]) -> None:
    """Fast check of the mechanism: the mask decoder alone, traced (``aot_eager``, no code generation)."""
    _compiled_matches_eager(make_model, "aot_eager", ("decoder",))


@pytest.mark.slow
def test_compiled_trainable_parts_match_eager_traced(make_model: Callable[..., MROVSeg]) -> None:
    """Dynamo traces adapter, decoder and classifier (``aot_eager``; ~90 s on the loaded 2-core CPU)."""
    _compiled_matches_eager(make_model, "aot_eager")


@pytest.mark.slow
def test_compiled_trainable_parts_match_eager_inductor(make_model: Callable[..., MROVSeg]) -> None:
    """The default backend (Inductor, C++ code generation: minutes on a 2-core CPU)."""
    _compiled_matches_eager(make_model, "inductor")


def test_fused_adamw_matches_the_default_implementation(make_model: Callable[..., MROVSeg]) -> None:
    assert adamw_options([torch.zeros(2)]) == {}  # CPU parameters: torch's default implementation
    models = [make_model(seed=3).train() for _ in range(2)]
    optimizers = [
        torch.optim.AdamW(models[0].trainable_parameters(), lr=1e-3, weight_decay=1e-4, foreach=True),
        torch.optim.AdamW(models[1].trainable_parameters(), lr=1e-3, weight_decay=1e-4, fused=True),
    ]
    images, text = _batch(10)
    for model, opt in zip(models, optimizers):
        _loss(model(images, text)).backward()
        opt.step()
    # one step: the same update up to float rounding (measured 1.5e-8; later steps drift apart where
    # Adam divides by a near-zero second moment, 1.5e-5 after 3 steps, as any two implementations do)
    torch.testing.assert_close(models[1].state_dict(), models[0].state_dict(), rtol=0, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fused AdamW is chosen on CUDA only")
def test_adamw_options_choose_fused_on_cuda() -> None:
    assert adamw_options([torch.zeros(2, device="cuda")]) == {"fused": True}


def test_trainer_compile_is_ours_not_lightnings(tmp_path: Path) -> None:
    from mrovseg.training.trainer import make_trainer

    with composed("train", tmp_path, ["trainer.compile=true"]) as cfg:
        assert cfg.trainer.compile is True
        trainer = make_trainer(cfg)  # Lightning's Trainer has no `compile` argument
    assert trainer.max_steps == 2


@pytest.mark.parametrize("experiment", ["vitb16", "vitl14", "vitb16_cityscapes"])
def test_gpu_experiments_load_with_workers_and_pinned_memory(experiment: str) -> None:
    cfg = compose_with_hydra("train", [f"experiment={experiment}"])
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.compile is False
    assert cfg.data.num_workers >= 4 and cfg.data.pin_memory and cfg.data.persistent_workers
    assert cfg.model.adapter.checkpoint is False
