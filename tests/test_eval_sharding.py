"""Exact distributed evaluation: every image is scored once, whatever the number of processes.

PyTorch's ``DistributedSampler`` pads each process to the same count, so on 2 processes an
odd-sized set scores an image twice. The evaluation dataloaders use unpadded shards instead
(``mrovseg.data.sampling``); the confusion matrices summed over 2 gloo processes then equal one
process's, which the padded sampler does not give (both checked here, without a model). The slow
test runs ``mrovseg.eval`` under ``trainer=ddp`` on 5 toy images.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler

from mrovseg.data.sampling import eval_sampler, trainer_replicas
from mrovseg.data.toy_datamodule import ToyDataModule
from mrovseg.training.metrics import SegMetrics
from tests.helpers import OVERFIT_MODEL, TINY, composed, describe, run_entry_point, tiny_trained_run

K, SIZE = 4, 8


def _sample(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic (prediction, label) pair for image ``index``."""
    g = torch.Generator().manual_seed(index)
    return torch.randint(0, K, (1, SIZE, SIZE), generator=g), torch.randint(
        0, K, (1, SIZE, SIZE), generator=g
    )


def _confmat(indices: list[int] | range) -> tuple[torch.Tensor, int, list[float]]:
    """The confusion matrix, image count and bootstrap mIoU interval, over all processes."""
    metric = SegMetrics(K)
    for i in indices:
        metric.update(*_sample(i))
    ci = metric.compute()["mIoU_ci95"].tolist()  # compute() gathers the per-image counts of every process
    with metric.sync_context():  # sums over processes when a process group exists
        return metric.confmat.clone(), int(metric.num_images), ci


def _worker(rank: int, world: int, port: int, n: int, out: str) -> None:
    """Scores ``n`` images on process ``rank`` with the unpadded and with torch's padded shards."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data = list(range(n))
        results = {}
        for name, sampler in (
            ("unpadded", eval_sampler(data, world, rank)),
            ("padded", DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)),
        ):
            confmat, num_images, ci = _confmat(list(sampler))
            results[name] = {"confmat": confmat, "num_images": num_images, "ci": ci}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the sampler
@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("n", [4, 5, 7, 11])
def test_shards_are_disjoint_and_cover_the_set(n: int, world: int) -> None:
    shards = [list(eval_sampler(range(n), world, rank)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # processes differ by one image at most
    assert all(
        isinstance(eval_sampler(range(n), world, r), UnrepeatedDistributedSampler) for r in range(world)
    )
    padded = [list(DistributedSampler(range(n), world, r, shuffle=False)) for r in range(world)]
    assert sum(map(len, padded)) == (n + world - 1) // world * world  # torch's sampler repeats images


def test_one_process_keeps_the_sequential_order() -> None:
    assert eval_sampler(range(5)) is None
    assert trainer_replicas(None) == (1, 0)
    assert trainer_replicas(SimpleNamespace(world_size=4, global_rank=3)) == (4, 3)


def test_fewer_images_than_processes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'voc20' has 2 images, fewer than the 3 processes"):
        eval_sampler(range(2), 3, 0, name="voc20")
    with pytest.raises(ValueError, match="rank 2"):
        eval_sampler(range(5), 2, 2)


def test_toy_datamodule_shards_evaluation_but_not_training() -> None:
    dm = ToyDataModule(num_train=4, num_val=5, num_test=3, batch_size=2)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    (val,) = dm.val_dataloader()
    (test,) = dm.test_dataloader()
    assert list(val.sampler) == [1, 3] and list(test.sampler) == [1]
    assert not isinstance(dm.train_dataloader().sampler, DistributedSampler)  # Lightning shards training
    dm.trainer = None
    assert list(dm.val_dataloader()[0].sampler) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- two processes
@pytest.mark.slow  # two fresh interpreters importing torch and Lightning: ~90 s on the loaded 2-core box
def test_two_gloo_processes_give_the_confusion_matrix_of_one(tmp_path: Path) -> None:
    """5 images on 2 processes: unpadded shards sum to the single-process matrix; padded ones do not."""
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, _free_port(), 5, str(out)), nprocs=2, join=True)
    got = torch.load(out)
    single, count, single_ci = _confmat(range(5))
    assert count == 5
    assert got["unpadded"]["num_images"] == 5
    torch.testing.assert_close(got["unpadded"]["confmat"], single, rtol=0, atol=0)
    assert got["unpadded"]["ci"] == single_ci  # the bootstrap interval is exact under DDP too
    # the measured bug: torch's padded sampler scores image 0 twice
    assert got["padded"]["num_images"] == 6
    torch.testing.assert_close(got["padded"]["confmat"], single + _confmat([0])[0], rtol=0, atol=0)


@pytest.mark.slow
def test_ddp_evaluation_of_an_odd_sized_set_equals_one_process(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from mrovseg.eval import evaluate

    trained, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    common = [f"clip.pretrained={trained / 'clip.pt'}", *TINY, *OVERFIT_MODEL, "data.num_test=5"]
    common.append(f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}")
    common.append("eval.analysis=true")  # the error analysis' matrices are summed over processes too
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
    proc = run_entry_point("mrovseg.eval", [*common, *ddp, f"hydra.run.dir={tmp_path / 'ddp'}"], timeout=600)
    assert proc.returncode == 0, describe(proc)
    ddp_metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    with composed("eval", tmp_path / "single", common) as cfg:
        evaluate(cfg)
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert ddp_metrics["toy"]["num_images"] == 5
    assert single == ddp_metrics  # bootstrap intervals included
    report = "analysis/toy/report.md"
    assert (tmp_path / "ddp" / report).read_text() == (tmp_path / "single" / report).read_text()
