"""Evaluation sampling under data parallelism: every image scored exactly once.

PyTorch's ``DistributedSampler`` (which Lightning puts into every dataloader under DDP) pads each
process to the same number of samples by repeating the first indices, so on 2 processes an
odd-sized benchmark (VOC: 1,449 images, PC-59/459: 5,105) scores one image twice; published
tables count each image once. For evaluation the datamodules therefore give their dataloaders
Lightning's ``UnrepeatedDistributedSampler``: process ``r`` of ``W`` gets indices
``r, r + W, r + 2W, …`` of ``range(n)`` without padding, so the shards are disjoint and cover the
set; processes may run one batch more or fewer, which evaluation allows (DDP syncs buffers on
the first forward only, and the metrics sum their confusion matrices across processes once, at
the end). Being a ``DistributedSampler``, Lightning leaves it in place.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler


def eval_sampler(dataset: Sized, num_replicas: int = 1, rank: int = 0, name: str = "") -> Sampler | None:
    """The sampler of an evaluation dataloader: None (sequential) on one process, else unpadded shards.

    Args:
        dataset: the evaluation dataset.
        num_replicas: number of processes (``trainer.world_size``).
        rank: this process's rank (``trainer.global_rank``).
        name: the benchmark's name, for the error message.

    Raises:
        ValueError: fewer images than processes (a process would have nothing to score and the
            end-of-epoch synchronisation would wait for it forever).
    """
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is not in [0, {num_replicas}) processes.")
    if num_replicas == 1:
        return None
    if len(dataset) < num_replicas:
        raise ValueError(
            f"Evaluation set {name or type(dataset).__name__!r} has {len(dataset)} images, fewer than the "
            f"{num_replicas} processes; every process needs at least one. Evaluate on fewer devices "
            "(trainer.devices=1)."
        )
    return UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)


def trainer_replicas(trainer: Any) -> tuple[int, int]:
    """``(world_size, global_rank)`` of an attached Lightning trainer, ``(1, 0)`` without one."""
    if trainer is None:
        return 1, 0
    return int(trainer.world_size), int(trainer.global_rank)


def store_loader_settings(
    datamodule: Any,
    *,
    batch_size: int,
    eval_batch_size: int,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
    train_split: str,
    eval_split: str,
    drop_last: bool,
) -> None:
    """Sets the attributes a datamodule's loaders read (:func:`segmentation_loader`): batch sizes,
    workers (kept alive between epochs only when there are any), splits and ``drop_last``."""
    datamodule.batch_size, datamodule.eval_batch_size = int(batch_size), int(eval_batch_size)
    datamodule.num_workers, datamodule.pin_memory = int(num_workers), bool(pin_memory)
    datamodule.persistent_workers = bool(persistent_workers) and num_workers > 0
    datamodule.train_split, datamodule.eval_split = train_split, eval_split
    datamodule.drop_last = bool(drop_last)


def segmentation_loader(
    datamodule: Any, dataset: Dataset, batch_size: int, train: bool, name: str
) -> DataLoader:
    """A datamodule's loader: shuffled (and ``drop_last`` as the datamodule says) for training; for
    evaluation each image exactly once across processes (:func:`eval_sampler`). The datamodule gives
    ``trainer``, ``drop_last``, ``num_workers``, ``pin_memory`` and ``persistent_workers``."""
    sampler = None if train else eval_sampler(dataset, *trainer_replicas(datamodule.trainer), name)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        sampler=sampler,
        drop_last=train and datamodule.drop_last,
        num_workers=datamodule.num_workers,
        pin_memory=datamodule.pin_memory,
        persistent_workers=datamodule.persistent_workers,
    )
