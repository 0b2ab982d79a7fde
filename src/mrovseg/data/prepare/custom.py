"""CLI of ``scripts/prepare_custom.py``: convert annotations into the custom layout of ``data=custom``.

Subcommands (each converts one split; run it once for ``train`` and once for ``val``):

- ``coco``: COCO-format JSON, instances / stuff (several files merge) or panoptic
  (:mod:`.custom_coco`, overlap rule there);
- ``colour``: colour-coded masks plus a CSV/YAML colour → class table (:mod:`.custom_colour`);
- ``toy``: a sample dataset drawn from the toy world, both splits (:mod:`.custom_toy`).

Each writes ``<out>/classes.txt`` (or checks it against the one already there), the labels under
``<out>/labels/<split>/<stem>.png`` and the images under ``<out>/images/<split>/``, and prints what
it wrote. Then: ``python -m mrovseg.check_data data=custom data.root=<out>``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mrovseg.data.prepare.common import run_cli

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def split_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, required=True, help="the custom dataset folder to write")
        p.add_argument("--split", required=True, help="split to write: train or val")
        p.add_argument("--images", type=Path, required=True, help="folder of this split's images")
        p.add_argument(
            "--image-mode",
            choices=("copy", "symlink", "hardlink"),
            default="copy",
            help="how images are placed",
        )

    coco = sub.add_parser("coco", help="COCO-format JSON (instances, stuff or panoptic)")
    split_args(coco)
    coco.add_argument(
        "--annotations", type=Path, nargs="+", required=True, help="COCO JSON file(s) of this split"
    )
    coco.add_argument("--masks", type=Path, default=None, help="panoptic only: folder of the segment PNGs")
    coco.add_argument(
        "--unlabeled",
        choices=("background", "ignore"),
        default="background",
        help="pixels no annotation covers: class 0 'background' (default) or the ignore value",
    )
    coco.add_argument(
        "--strict",
        action="store_true",
        help="stop before writing anything if an annotation is rejected (default: report and skip it)",
    )
    colour = sub.add_parser("colour", help="colour-coded masks + colour table (CSV or YAML)")
    split_args(colour)
    colour.add_argument("--masks", type=Path, required=True, help="folder of the colour masks (same stems)")
    colour.add_argument("--table", type=Path, required=True, help="colour table: CSV name,r,g,b or YAML")
    colour.add_argument(
        "--unknown", choices=("error", "ignore"), default="error", help="colours missing from the table"
    )
    toy = sub.add_parser("toy", help="a sample dataset from the toy world (both splits)")
    toy.add_argument("--out", type=Path, required=True)
    toy.add_argument("--num-train", type=int, default=64)
    toy.add_argument("--num-val", type=int, default=16)
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--eval-size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand; prints the report, or the error with exit code 2."""
    args = _parser().parse_args(argv)
    if args.command == "coco":
        from mrovseg.data.prepare.custom_coco import prepare_coco

        return run_cli(
            lambda: prepare_coco(
                args.out,
                args.split,
                args.images,
                args.annotations,
                args.masks,
                args.unlabeled,
                args.image_mode,
                args.strict,
            )
        )
    if args.command == "colour":
        from mrovseg.data.prepare.custom_colour import prepare_colour

        return run_cli(
            lambda: prepare_colour(
                args.out, args.split, args.images, args.masks, args.table, args.unknown, args.image_mode
            )
        )
    from mrovseg.data.prepare.custom_toy import prepare_toy

    return run_cli(
        lambda: prepare_toy(args.out, args.num_train, args.num_val, args.seed, eval_size=args.eval_size)
    )
