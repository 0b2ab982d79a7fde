"""The poly LR schedule: torch's PolynomialLR in closed form gives the paper's sequence bit for bit."""

from __future__ import annotations

import warnings

import pytest
import torch

from mrovseg.training.optim import ClosedFormPolynomialLR, decay_groups


def _lr_sequence(make_scheduler, steps: int, base_lr: float) -> list[list[float]]:
    params = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW(
        [{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}], lr=base_lr
    )
    scheduler = make_scheduler(optimizer)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scheduler.step() without optimizer.step()
        for _ in range(steps):
            out.append([g["lr"] for g in optimizer.param_groups])
            scheduler.step()
    return out


@pytest.mark.parametrize(("total", "power", "base_lr"), [(1500, 0.9, 1e-3), (30, 0.9, 1e-3), (7, 2.0, 0.1)])
def test_closed_form_polynomial_lr_equals_the_poly_formula_exactly(
    total: int, power: float, base_lr: float
) -> None:
    # the schedule the module used before (LambdaLR with the poly factor): the reference, bit for bit
    def poly_lambda(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1.0 - min(step, total) / total) ** power
        )

    expected = _lr_sequence(poly_lambda, total + 5, base_lr)
    got = _lr_sequence(
        lambda o: ClosedFormPolynomialLR(o, total_iters=total, power=power), total + 5, base_lr
    )
    assert got == expected  # exact float equality, every step, both parameter groups
    assert got[-1] == [0.0, 0.0] and got[0] == [base_lr, base_lr]


def test_the_library_recursive_form_drifts_which_is_why_the_closed_form_is_used() -> None:
    total, power = 1500, 0.9
    lib = _lr_sequence(
        lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=total, power=power), total, 1e-3
    )
    closed = _lr_sequence(lambda o: ClosedFormPolynomialLR(o, total_iters=total, power=power), total, 1e-3)
    assert lib != closed
    flat = [lr for step in closed for lr in step]
    assert [lr for step in lib for lr in step] == pytest.approx(
        flat, rel=1e-9
    )  # same schedule up to rounding


def test_decay_groups_skip_the_frozen_backbone_and_norms() -> None:
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.proj = torch.nn.Linear(2, 2)
    model.norm = torch.nn.LayerNorm(2)
    model.queries = torch.nn.Parameter(torch.zeros(3, 2))
    decay, no_decay = decay_groups(model)
    assert decay["params"] == [model.proj.weight] and "weight_decay" not in decay
    assert no_decay["weight_decay"] == 0.0
    ids = {id(p) for p in no_decay["params"]}
    assert ids == {id(model.proj.bias), id(model.norm.weight), id(model.norm.bias), id(model.queries)}


def test_warmup_scales_the_closed_form_linearly_then_leaves_it() -> None:
    total, warm, base = 40, 8, 1e-3
    plain = _lr_sequence(lambda o: ClosedFormPolynomialLR(o, total_iters=total, power=0.9), total, base)
    warmed = _lr_sequence(
        lambda o: ClosedFormPolynomialLR(o, total_iters=total, power=0.9, warmup_iters=warm), total, base
    )
    for step in range(total):
        factor = (step + 1) / warm if step < warm else 1.0
        assert warmed[step] == pytest.approx([lr * factor for lr in plain[step]], rel=1e-12)
    assert warmed[warm:] == plain[warm:]  # bit for bit after the warm-up
    zero = _lr_sequence(
        lambda o: ClosedFormPolynomialLR(o, total_iters=total, power=0.9, warmup_iters=0), 5, base
    )
    assert zero == plain[:5]  # the default is the plain poly decay
