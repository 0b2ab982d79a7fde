"""A resumed run continues the data order and the random draws: it ends with an uninterrupted run's weights.

The toy datamodule's training loader (:func:`mrovseg.data.sampling.train_loader`) gives Lightning a
state (the epoch's permutation seed, the samples consumed, the global RNG states) that goes into
every checkpoint; on resume the epoch continues where it stopped. An uninterrupted run draws exactly
what ``shuffle=True`` drew, so its results do not change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mrovseg.data.sampling import ResumableRandomSampler, train_loader
from mrovseg.train import train
from tests.helpers import composed


class _Owner:
    trainer = None


def _epochs(loader: DataLoader, count: int) -> list[list[int]]:
    return [[int(i) for batch in loader for i in batch] for _ in range(count)]


def test_uninterrupted_order_and_draws_equal_shuffle_true() -> None:
    data = list(range(11))
    torch.manual_seed(7)
    plain = _epochs(DataLoader(data, batch_size=3, shuffle=True, drop_last=True), 3)
    after_plain = torch.rand(3)
    torch.manual_seed(7)
    ours = _epochs(train_loader(_Owner(), data, 3, drop_last=True), 3)
    assert ours == plain and len({tuple(e) for e in ours}) == 3
    assert torch.equal(torch.rand(3), after_plain)  # the same global draws, so the same training after


def test_sampler_state_continues_the_epoch_and_the_global_rng() -> None:
    sampler = ResumableRandomSampler(range(10))
    torch.manual_seed(3)
    it = iter(sampler)
    first = [next(it) for _ in range(4)]
    state = sampler.state_dict(position=4)
    expected_rest, expected_draw = list(it), torch.rand(2)
    state = torch.load(_saved(state), weights_only=True)  # plain data: Lightning resumes with weights_only

    resumed = ResumableRandomSampler(range(10))
    resumed.load_state_dict(state)
    torch.manual_seed(999)  # whatever the resumed process drew before
    assert list(resumed) == expected_rest and sorted(first + expected_rest) == list(range(10))
    assert torch.equal(torch.rand(2), expected_draw)


def _saved(obj: object) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "state.pt"
    torch.save(obj, path)
    return path


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return {"global_step": ckpt["global_step"], **ckpt["state_dict"]}


#: 12 scenes in batches of 2: 6 steps per epoch, 8 steps in all (an epoch boundary in the second half).
COMMON = [
    "data.num_train=12",
    "data.batch_size=2",
    "trainer.max_steps=8",
    "module.optimizer.lr=1e-2",
    "test=false",
    "logger={}",
    "callbacks.model_checkpoint.monitor=null",
    "callbacks.latest_checkpoint.every_minutes=null",
]

#: (checkpoint every, validation every or None, crash before step, more overrides): the resume point
#: is mid-epoch with a validation at that step; the end of an epoch; the end of an epoch cut short by
#: limit_train_batches (4 of its 6 batches).
CASES = {
    "mid_epoch_after_validation": (4, 4, 5, []),
    "end_of_epoch": (3, None, 7, []),
    "end_of_a_limited_epoch": (4, None, 5, ["+trainer.limit_train_batches=4"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path: Path, case: str) -> None:
    every, val, crash, extra = CASES[case]
    common = [*COMMON, *extra, f"callbacks.latest_checkpoint.every_n_train_steps={every}"]
    common += [f"trainer.val_check_interval={val}"] if val else ["trainer.limit_val_batches=0"]
    with composed("train", tmp_path / "straight", common) as cfg:
        train(cfg)
    stop = ["+callbacks.crash._target_=tests.helpers.CrashAtStep", f"+callbacks.crash.step={crash}"]
    with composed("train", tmp_path / "resumed", [*common, *stop]) as cfg, pytest.raises(RuntimeError):
        train(cfg)
    assert _weights(tmp_path / "resumed")["global_step"] == crash - 1  # stopped half-way
    with composed("train", tmp_path / "resumed", [*common, "ckpt_path=last"]) as cfg:
        train(cfg)
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert straight.pop("global_step") == resumed.pop("global_step") == 8
    largest = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    print(f"{case}: largest weight difference {largest:.3g}")
    torch.testing.assert_close(resumed, straight, rtol=1e-6, atol=1e-7)


def test_order_seed_fixes_the_order_whatever_the_run_seed_and_keeps_the_global_stream() -> None:
    """``data.order_seed``: the order depends on it and the epoch only; global draws are unchanged."""
    data = list(range(11))
    torch.manual_seed(7)
    plain = _epochs(train_loader(_Owner(), data, 3, drop_last=True), 2)
    after_plain = torch.rand(3)
    torch.manual_seed(7)
    fixed_a = _epochs(train_loader(_Owner(), data, 3, order_seed=5, drop_last=True), 2)
    assert torch.equal(torch.rand(3), after_plain)  # the run's other draws are those without order_seed
    torch.manual_seed(8)  # another run seed: the same order
    assert _epochs(train_loader(_Owner(), data, 3, order_seed=5, drop_last=True), 2) == fixed_a
    torch.manual_seed(7)
    fixed_b = _epochs(train_loader(_Owner(), data, 3, order_seed=6, drop_last=True), 2)
    assert fixed_a != plain and fixed_b != fixed_a and fixed_a[0] != fixed_a[1]  # each epoch its own


def test_order_seed_resumes_mid_epoch_and_at_the_next_epoch() -> None:
    sampler = ResumableRandomSampler(range(10), order_seed=3)
    epoch0 = list(sampler)
    it = iter(sampler)  # epoch 1, interrupted after 4 samples
    head = [next(it) for _ in range(4)]
    state = torch.load(_saved(sampler.state_dict(position=4)), weights_only=True)
    rest, epoch2 = list(it), list(sampler)

    resumed = ResumableRandomSampler(range(10), order_seed=3)
    resumed.load_state_dict(state)
    torch.manual_seed(999)
    assert list(resumed) == rest and list(resumed) == epoch2 and head + rest != epoch0
    done = ResumableRandomSampler(range(10), order_seed=3)  # resumed exactly at the end of epoch 1
    done.load_state_dict({**state, "position": 10})
    assert list(done) == epoch2


def test_evaluation_loaders_draw_nothing_from_the_global_rng() -> None:
    from mrovseg.data.toy_datamodule import ToyDataModule

    dm = ToyDataModule(num_val=2, num_test=2, eval_size=[64, 64])
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    for loader in [*dm.val_dataloader(), *dm.test_dataloader()]:
        assert len(list(loader)) == 2  # the val scenes, then the test scenes
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(5)
    list(DataLoader(list(range(4)), batch_size=2))  # what a plain loader does: one draw per iterator
    assert not torch.equal(torch.rand(3), expected)


def test_how_often_a_run_validates_does_not_change_its_training(tmp_path: Path) -> None:
    """Validating every 2 steps or only at the end: the same weights after 8 steps (the loaders'
    iterators no longer advance the global stream the mask loss's points and the epoch order use)."""
    runs = {}
    for every in (2, 8):
        overrides = [
            *COMMON,
            f"trainer.val_check_interval={every}",
            "callbacks.latest_checkpoint.every_n_train_steps=8",
        ]
        with composed("train", tmp_path / f"val{every}", overrides) as cfg:
            train(cfg)
        runs[every] = _weights(tmp_path / f"val{every}")
    assert runs[2].pop("global_step") == runs[8].pop("global_step") == 8
    for key in runs[2]:
        assert torch.equal(runs[2][key], runs[8][key]), key
