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

Training sampling that resumes: :func:`train_loader` shuffles as ``shuffle=True`` does (the same
draws, so an uninterrupted run is unchanged) and gives Lightning a state to keep in the checkpoint,
the epoch's permutation, its place in it and the global RNG states, so a resumed run continues the
epoch where it stopped instead of starting it again (:class:`ResumableDataLoader`; README, "Resuming
continues the data order").
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sized
from typing import Any

import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler


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
    evaluation each image exactly once across processes (:func:`eval_sampler`); training's continues
    its epoch on resume (:func:`train_loader`). The datamodule gives
    ``trainer``, ``drop_last``, ``num_workers``, ``pin_memory`` and ``persistent_workers``."""
    common = {
        "num_workers": datamodule.num_workers,
        "pin_memory": datamodule.pin_memory,
        "persistent_workers": datamodule.persistent_workers,
    }
    if train:
        return train_loader(datamodule, dataset, batch_size, drop_last=datamodule.drop_last, **common)
    sampler = eval_sampler(dataset, *trainer_replicas(datamodule.trainer), name)
    return eval_loader(dataset, batch_size, sampler, **common)


def eval_loader(dataset: Dataset, batch_size: int, sampler: Sampler, **common: Any) -> DataLoader:
    """An evaluation loader that draws nothing from torch's global RNG.

    Each iterator over a ``DataLoader`` draws its base seed (the workers' seeds) from the loader's
    ``generator``, or from the global RNG when it has none — so every validation would advance the
    stream the training's random draws (mask-loss points, the next epoch's order) come from, and how
    often a run validates would change what it trains (measured: other losses from the first step after a
    validation). With its own generator the training is the same whatever ``val_check_interval``.
    """
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=torch.Generator(), **common)


# ---------------------------------------------------------------------------------------- resuming
def global_rng_state() -> dict[str, Any]:
    """torch's (CPU and, once initialised, CUDA), numpy's and Python's global RNG states, as plain data
    (tensors, ints, tuples) that a checkpoint loaded with ``torch.load(weights_only=True)`` holds."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restores what :func:`global_rng_state` returned (CUDA only when both runs had it)."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _draw_seed() -> int:
    """One int64 from torch's global RNG, as ``RandomSampler`` and each new DataLoader iterator draw it."""
    return int(torch.empty((), dtype=torch.int64).random_().item())


class ResumableRandomSampler(RandomSampler):
    """``RandomSampler`` whose place in an epoch can be saved and taken up again.

    Its draws are ``RandomSampler``'s (one int64 from torch's global RNG when an epoch's first index is
    taken, then ``randperm`` from a generator of that seed), so an uninterrupted run sees the same
    order as with ``shuffle=True``. :meth:`state_dict` holds the epoch's seed, how many of its samples
    training consumed and the global RNG states; after :meth:`load_state_dict` the next epoch
    continues that permutation from there with those RNG states (restored at that moment, after the
    new DataLoader iterator drew its own seed). Being a ``RandomSampler``, Lightning replaces it under
    DDP with its ``DistributedSampler`` as before (that epoch then starts again; README, "Resuming
    continues the data order").

    ``order_seed`` (the toy world's ``data.order_seed``; a lab tool): epoch ``e``'s permutation comes
    from ``order_seed`` and ``e`` alone, so the data order no longer follows the run's ``seed`` (which
    then varies only the initial weights and the loss's random points). The global draw is still made,
    so the global RNG stream, and all else in the run, is what it would be without it.
    """

    def __init__(self, data_source: Sized, order_seed: int | None = None) -> None:
        super().__init__(data_source)  # type: ignore[arg-type]
        self.epoch_seed: int | None = None
        self.order_seed = order_seed
        self.epochs_begun = 0
        self._resume: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)  # type: ignore[arg-type]
        resume, self._resume = self._resume, None
        start = 0
        if resume is not None:
            set_global_rng_state(resume["rng"])
            self.epochs_begun = int(resume.get("epochs_begun", 0))
            if resume["seed"] is not None and resume["position"] < n:
                self.epoch_seed, start = int(resume["seed"]), int(resume["position"])
            else:  # the epoch was over: a new one begins, after the new iterator's own draw(s)
                for _ in range(int(resume.get("iterator_draws", 1))):
                    _draw_seed()
        if start == 0:
            self.epoch_seed = _draw_seed()
            if self.order_seed is not None:  # SeedSequence: distinct streams for (order_seed, epoch)
                self.epoch_seed = int(
                    np.random.SeedSequence([self.order_seed, self.epochs_begun]).generate_state(1)[0]
                )
            self.epochs_begun += 1
        generator = torch.Generator()
        generator.manual_seed(self.epoch_seed)
        yield from torch.randperm(n, generator=generator).tolist()[start:]

    def state_dict(self, position: int, iterator_draws: int = 1) -> dict[str, Any]:
        """The state after ``position`` samples of the current epoch were consumed by training.

        ``iterator_draws``: the global draws a new epoch makes before this sampler's own (1: a new
        DataLoader iterator; 0: persistent workers reuse theirs)."""
        return {
            "seed": self.epoch_seed,
            "position": int(position),
            "iterator_draws": int(iterator_draws),
            "epochs_begun": self.epochs_begun,
            "rng": global_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Makes the next epoch continue where :meth:`state_dict` was taken."""
        self._resume = dict(state)


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose place Lightning saves into checkpoints and restores on resume.

    Lightning calls ``state_dict``/``load_state_dict`` of every dataloader that has them (its
    stateful-dataloader support; the state goes to ``loops.fit_loop.state_dict.combined_loader``).
    The place is the number of batches training *consumed* in this epoch, ``progress()`` (the
    trainer's count): the loader's own count runs ahead by the batches Lightning and the workers
    prefetch. Without a :class:`ResumableRandomSampler` (DDP replaced it) the state is empty.

    Args:
        progress: ``(batches of the current epoch consumed so far, whether the epoch is over)``
            (None: nothing to save).
    """

    def __init__(
        self, *args: Any, progress: Callable[[], tuple[int, bool]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, Any]:
        if not isinstance(self.sampler, ResumableRandomSampler) or self.progress is None:
            return {}
        batches, over = self.progress()
        n = len(self.sampler)
        position = n if over or batches >= len(self) else int(batches) * int(self.batch_size or 1)
        draws = 0 if self.persistent_workers and self.num_workers > 0 else 1
        return self.sampler.state_dict(position, draws)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and isinstance(self.sampler, ResumableRandomSampler):
            self.sampler.load_state_dict(state)


def consumed_batches(trainer: Any) -> tuple[int, bool]:
    """``(training batches of the current epoch processed so far, whether that is the whole epoch)``
    (``trainer.num_training_batches`` follows ``limit_train_batches``); ``(0, False)`` without a trainer."""
    if trainer is None:
        return 0, False
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    return done, done >= trainer.num_training_batches


def train_loader(
    datamodule: Any, dataset: Dataset, batch_size: int, order_seed: int | None = None, **kwargs: Any
) -> ResumableDataLoader:
    """A datamodule's shuffled training loader that resumes mid-epoch (:class:`ResumableDataLoader`);
    ``order_seed``: see :class:`ResumableRandomSampler`."""
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ResumableRandomSampler(dataset, order_seed),
        progress=lambda: consumed_batches(datamodule.trainer),
        **kwargs,
    )
