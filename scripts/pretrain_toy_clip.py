"""Contrastive pretraining of the tiny CLIP that the default (toy) experiment segments with.

A ViT with 4-pixel patches at 32² and a 3-layer text transformer (the open_clip model config
``src/mrovseg/assets/toy_clip/toy-vit-p4-32.json``) learn from image-caption pairs of the
procedural world of :mod:`mrovseg.data.synthetic`, rendered at 32² (the CLIP resolution): 1-3
objects of 6-20 px, captions naming every object that is at least half visible ("a photo of a
red circle and a blue ring."), a few empty scenes captioned with "background". Captions use
*all* object classes, base and novel, as real CLIP has seen every word.

Loss: symmetric InfoNCE (``open_clip.ClipLoss``) with a learnable temperature clamped to ≤ 100.
Input normalisation is ``(x - 0.5) / 0.25``; the segmentation model must normalise the same way.

Usage::

    python scripts/pretrain_toy_clip.py                      # ~10 min on 2 CPU cores
    python scripts/pretrain_toy_clip.py --steps 50 --num-images 20000 --out /tmp/toy_clip  # smoke test

Writes ``toy-vit-p4-32.pt`` (fp16 state dict, loadable with
``open_clip.create_model("toy-vit-p4-32", pretrained=<file>)`` once the JSON is registered with
``open_clip.add_model_config``) and ``README.md`` (command, seed, duration, machine, accuracy)
next to the JSON config.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import open_clip
import torch

from mrovseg.constants import ASSETS_DIR
from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng

MODEL_NAME = "toy-vit-p4-32"
CONFIG_PATH = ASSETS_DIR / "toy_clip" / f"{MODEL_NAME}.json"
MEAN, STD = 0.5, 0.25
TEMPLATES = (
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "a rendering of {}.",
    "a drawing of {}.",
)
ZERO_SHOT_TEMPLATE = "a photo of a {}."
IMAGE_SIZE = 32
#: Zero-shot test sets: single-object images, diameters in pixels at 32².
ZERO_SHOT_SETS = {"overall": (8.0, 20.0), "small": (6.0, 8.0), "large": (14.0, 20.0)}


def caption(names: list[str], rng: np.random.Generator) -> str:
    """ "a photo of a red circle, a blue ring and a green cross." (objects shuffled, random template)."""
    if names:
        names = [f"a {n}" for n in rng.permutation(names)]
        phrase = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    else:
        phrase = f"{rng.choice(['a', 'the'])} background"
    return str(rng.choice(TEMPLATES)).format(phrase)


def _render_pair(args: tuple[int, int, float]) -> tuple[np.ndarray, str]:
    """One training pair: uint8 ``(32, 32, 3)`` image and its caption."""
    seed, index, p_empty = args
    world, rng = ToyWorld(), scene_rng(seed, "clip-train", index)
    empty = rng.random() < p_empty
    cfg = SceneConfig(IMAGE_SIZE, IMAGE_SIZE, (0, 0) if empty else (1, 3), (6.0, 20.0), log_uniform=False)
    scene = render_scene(rng, world, cfg)
    names = [world.class_names[o.class_id] for o, v in zip(scene.objects, scene.visible) if v >= 0.5]
    return (scene.image * 255 + 0.5).astype(np.uint8), caption(names, rng)


def _render_single(args: tuple[int, str, int, float, float]) -> np.ndarray:
    """One zero-shot test image: a single object of class ``1 + index % 30``."""
    seed, split, index, lo, hi = args
    world = ToyWorld()
    cfg = SceneConfig(IMAGE_SIZE, IMAGE_SIZE, (1, 1), (lo, hi), log_uniform=False)
    scene = render_scene(
        scene_rng(seed, split, index), world, cfg, classes=[1 + index % (world.num_classes - 1)]
    )
    return (scene.image * 255 + 0.5).astype(np.uint8)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` → normalised float ``(B, 3, H, W)``."""
    return (images.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD


@torch.no_grad()
def zero_shot(
    model: torch.nn.Module, tokenizer, images: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> float:
    """Top-1 accuracy (%) of ``"a photo of a {}."`` prompts on ``images``."""
    model.eval()
    text = model.encode_text(tokenizer([ZERO_SHOT_TEMPLATE.format(n) for n in names]), normalize=True)
    preds = torch.cat(
        [(model.encode_image(to_input(b), normalize=True) @ text.T).argmax(1) for b in images.split(500)]
    )
    model.train()
    return (preds == labels).float().mean().item() * 100


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (ndim ≥ 2) only, as open_clip's training does."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def lr_at(step: int, steps: int, lr: float, warmup: float) -> float:
    """Linear warm-up over ``warmup · steps`` steps, then cosine decay to 0."""
    n_warm = max(1, int(warmup * steps))
    if step < n_warm:
        return lr * (step + 1) / n_warm
    return 0.5 * lr * (1 + math.cos(math.pi * (step - n_warm) / max(1, steps - n_warm)))


def cpu_name() -> str:
    """The CPU model name (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of steps")
    p.add_argument("--num-images", type=int, default=300_000, help="pre-rendered training pairs")
    p.add_argument("--p-empty", type=float, default=0.02, help="fraction of empty 'background' scenes")
    p.add_argument("--eval-images", type=int, default=3000, help="per zero-shot test set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes for rendering")
    p.add_argument("--out", type=Path, default=CONFIG_PATH.parent, help="folder for the .pt and README.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Render the data, train, evaluate zero-shot, save the checkpoint and its README."""
    args = parse_args(argv)
    t_start = time.time()
    open_clip.add_model_config(CONFIG_PATH)  # before get_tokenizer, else it silently uses 77 tokens
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    world = ToyWorld()
    names = world.class_names[1:]  # zero-shot over the 30 object classes

    with Pool(args.workers) as pool:
        pairs = pool.map(
            _render_pair, [(args.seed, i, args.p_empty) for i in range(args.num_images)], chunksize=2000
        )
        test_sets = {}
        for key, (lo, hi) in ZERO_SHOT_SETS.items():
            jobs = [(args.seed, f"clip-zero-shot-{key}", i, lo, hi) for i in range(args.eval_images)]
            labels = torch.arange(args.eval_images) % len(names)
            test_sets[key] = (
                torch.from_numpy(np.stack(pool.map(_render_single, jobs, chunksize=500))),
                labels,
            )
    images = torch.from_numpy(np.stack([im for im, _ in pairs]))  # (N, 32, 32, 3) uint8
    texts = tokenizer([c for _, c in pairs])  # (N, 20)
    longest = 2 + max(len(tokenizer.encode(c)) for c in {c for _, c in pairs})  # + start/end tokens
    assert longest <= texts.shape[1], f"captions of {longest} tokens exceed the context length"
    t_data = time.time() - t_start
    print(
        f"rendered {len(pairs)} pairs + {3 * args.eval_images} test images in {t_data:.0f} s; e.g. {pairs[0][1]!r}"
    )

    torch.manual_seed(args.seed)
    model = open_clip.create_model(MODEL_NAME)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    gen = torch.Generator().manual_seed(args.seed)
    order, pos = torch.randperm(len(images), generator=gen), 0
    t_train, log_every = time.time(), max(1, min(100, args.steps // 24))
    for step in range(args.steps):
        if pos + args.batch_size > len(order):
            order, pos = torch.randperm(len(images), generator=gen), 0
        idx = order[pos : pos + args.batch_size]
        pos += args.batch_size
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        img_f = model.encode_image(to_input(images[idx]), normalize=True)
        txt_f = model.encode_text(texts[idx], normalize=True)
        loss = loss_fn(img_f, txt_f, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % log_every == 0 or step + 1 == args.steps:
            msg = f"step {step + 1}/{args.steps} loss {loss.item():.3f} scale {model.logit_scale.exp().item():.1f}"
            if (step + 1) % (4 * log_every) == 0:
                msg += f" zero-shot {zero_shot(model, tokenizer, *test_sets['overall'], names):.1f}%"
            print(f"{msg} [{time.time() - t_train:.0f} s]", flush=True)
    t_train = time.time() - t_train

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / f"{MODEL_NAME}.pt"
    state = {
        k: v.half() if v.is_floating_point() and k != "logit_scale" else v
        for k, v in model.state_dict().items()
    }
    torch.save(state, ckpt)
    if args.out.resolve() != CONFIG_PATH.parent.resolve():
        shutil.copy(CONFIG_PATH, args.out / CONFIG_PATH.name)
    reloaded = open_clip.create_model(MODEL_NAME, pretrained=str(ckpt))
    acc = {k: zero_shot(reloaded, tokenizer, x, y, names) for k, (x, y) in test_sets.items()}
    x, y = test_sets["overall"]
    acc_bg = zero_shot(reloaded, tokenizer, x, y + 1, world.class_names)
    total = time.time() - t_start
    print("zero-shot (reloaded fp16 checkpoint): " + ", ".join(f"{k} {v:.1f}%" for k, v in acc.items()))
    print(f"zero-shot overall with 'background' in the vocabulary (31 classes): {acc_bg:.1f}%")
    print(
        f"data {t_data:.0f} s, training {t_train:.0f} s ({t_train / args.steps:.3f} s/step), total {total:.0f} s"
    )
    write_readme(args, acc, acc_bg, t_data, t_train, total, ckpt)


def write_readme(
    args: argparse.Namespace,
    acc: dict[str, float],
    acc_bg: float,
    t_data: float,
    t_train: float,
    total: float,
    ckpt: Path,
) -> None:
    """Record how the checkpoint was made and what it scores."""
    command = " ".join(["python scripts/pretrain_toy_clip.py", *sys.argv[1:]])
    sets = ", ".join(f"{k} {lo:g}-{hi:g} px" for k, (lo, hi) in ZERO_SHOT_SETS.items())
    text = f"""# Toy CLIP: `{MODEL_NAME}`

A tiny open_clip model pretrained from scratch by `scripts/pretrain_toy_clip.py` on image-caption
pairs of the procedural world (`mrovseg.data.synthetic`) at 32² — the CLIP of the default
(toy) experiment. Captions name every object class (base and novel) and "background".

- `{MODEL_NAME}.json`: the open_clip model config (ViT patch 4 at 32², width 64, 3 layers,
  head width 32; text width 64, 3 layers, context 20; embed dim 64).
- `{MODEL_NAME}.pt`: state dict, fp16 (the logit scale fp32), {ckpt.stat().st_size / 2**20:.1f} MiB.

```python
import open_clip
open_clip.add_model_config("src/mrovseg/assets/toy_clip/{MODEL_NAME}.json")  # before get_tokenizer
model = open_clip.create_model("{MODEL_NAME}", pretrained="src/mrovseg/assets/toy_clip/{MODEL_NAME}.pt")
tokenizer = open_clip.get_tokenizer("{MODEL_NAME}")  # context length 20
```

**Input normalisation: mean {MEAN}, std {STD}** on every channel (`(x - {MEAN}) / {STD}`, x in [0, 1]),
not OpenAI's; images are 32² (resize bilinearly, no crop).

## How it was made

```
{command}
```

- seed {args.seed}; {args.steps} steps of batch {args.batch_size} over {args.num_images} pre-rendered pairs
  ({args.p_empty:.0%} empty scenes); AdamW lr {args.lr:g}, betas (0.9, 0.98), eps 1e-6, weight decay
  {args.weight_decay:g} on matrices, {args.warmup:.0%} warm-up then cosine; logit scale from ln(1/0.07),
  clamped to ≤ ln 100; symmetric InfoNCE (`open_clip.ClipLoss`).
- duration: {total / 60:.1f} min in all — rendering {t_data:.0f} s, training {t_train:.0f} s
  ({t_train / args.steps:.3f} s/step).
- machine: {cpu_name()}, {os.cpu_count()} cores (torch {torch.get_num_threads()} threads, shared with other
  jobs), torch {torch.__version__}, open_clip {open_clip.__version__}, Python {platform.python_version()}.

## Zero-shot accuracy

Held-out single-object 32² images, {args.eval_images} per set ({sets}), 30 object classes,
prompt "{ZERO_SHOT_TEMPLATE}", measured on the reloaded fp16 checkpoint:

| overall | small | large |
|---|---|---|
| {acc["overall"]:.1f} % | {acc["small"]:.1f} % | {acc["large"]:.1f} % |

With "background" added to the vocabulary (31 classes), overall: {acc_bg:.1f} %.
"""
    (args.out / "README.md").write_text(text)


if __name__ == "__main__":
    main()
