"""Images per optimizer step, whatever the number of devices: gradient accumulation from a global batch.

The paper trains on 2 GPUs and follows SAN's COCO-Stuff schedule: 60k optimizer steps of 32
images. ``data.batch_size`` is per device, so the number of images per step depends on how many
devices run: ``per-device batch × devices × nodes × accumulate_grad_batches``. With
``global_batch_size`` set (the ViT experiments: 32), ``trainer.accumulate_grad_batches`` is
derived at start so that the product is the global batch, on 1, 2 or 8 GPUs alike:

    1 GPU,  batch_size 16 → accumulate 2        2 GPUs, batch_size 16 → accumulate 1
    8 GPUs, batch_size 4  → accumulate 1        8 GPUs, batch_size 16 → error (128 > 32)

Lightning counts ``max_steps`` in optimizer steps but an integer ``val_check_interval`` in
batches, so the latter is multiplied by the accumulation to stay in optimizer steps. The
resulting batch is logged at start in every case.
"""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


def accumulation_steps(global_batch_size: int, per_device: int, world_size: int) -> int:
    """Gradient-accumulation steps so that ``per_device × world_size × steps == global_batch_size``.

    Raises:
        ValueError: a non-positive size, or a global batch that is not a multiple of
            ``per_device × world_size``; the message says which per-device batch sizes fit.
    """
    if global_batch_size < 1 or per_device < 1 or world_size < 1:
        raise ValueError(
            f"global_batch_size={global_batch_size}, data.batch_size={per_device} and {world_size} devices "
            "must all be positive."
        )
    per_step = per_device * world_size
    if global_batch_size % per_step:
        fits = [b for b in range(1, global_batch_size + 1) if global_batch_size % (b * world_size) == 0]
        raise ValueError(
            f"global_batch_size={global_batch_size} is not a multiple of data.batch_size={per_device} × "
            f"{world_size} devices = {per_step} images per step. On {world_size} devices use "
            f"data.batch_size in {fits or 'none (fewer devices)'}, or change global_batch_size."
        )
    return global_batch_size // per_step


def apply_global_batch(trainer: L.Trainer, global_batch_size: int | None, per_device: int) -> int:
    """Sets ``trainer.accumulate_grad_batches`` from a global batch (if given) and logs the batch.

    Call it after building the trainer and before ``fit``. Without a global batch the trainer's
    own ``accumulate_grad_batches`` stays.

    Returns:
        Images per optimizer step.

    Raises:
        ValueError: see :func:`accumulation_steps`; or the trainer already accumulates a different
            number of batches than the global batch needs.
    """
    world = int(trainer.world_size)
    if global_batch_size is not None:
        steps = accumulation_steps(int(global_batch_size), int(per_device), world)
        if trainer.accumulate_grad_batches not in (1, steps):
            raise ValueError(
                f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches} contradicts "
                f"global_batch_size={global_batch_size} (needs {steps}); set only one of them."
            )
        if steps > 1 and isinstance(trainer.val_check_interval, int):
            trainer.val_check_interval *= steps  # Lightning counts it in batches: keep it in steps
        trainer.accumulate_grad_batches = steps
    images = per_device * world * trainer.accumulate_grad_batches
    message = (
        f"Batch: {per_device} images per device × {world} device(s) × {trainer.accumulate_grad_batches} "
        f"accumulated = {images} images per optimizer step"
    )
    if trainer.is_global_zero:
        log.info(message)
    return images
