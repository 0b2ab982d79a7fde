"""COCO-format annotation JSON → the custom layout (``scripts/prepare_custom.py coco``).

Reads *instances* or *stuff* files (``annotations`` with ``segmentation`` polygons or RLE, decoded
with pycocotools) and *panoptic* files (``annotations`` with ``segments_info`` and a PNG of segment
ids per image, ``id = R + 256·G + 256²·B``). Several files of one split (e.g. COCO's instances and
stuff JSON) are merged; their categories must agree by id.

Vocabulary: the categories in increasing id order. Pixels no annotation covers are class 0
``background`` (``unlabeled="background"``, the default) or the ignore value
(``unlabeled="ignore"``, then the categories start at 0).

Overlap rule (instances): where annotations overlap, a pixel takes the class of the **smallest**
annotation (fewest mask pixels), so a cup on a table stays a cup; crowd regions (``iscrowd=1``)
lose to every non-crowd annotation; between equal areas the higher annotation id wins. The report
counts the pixels this decided. Panoptic segments do not overlap.

Checked before anything is written (:mod:`.coco_checks`): every annotation's ``image_id`` and
``category_id`` must be listed, its polygons finite numbers (an even count of at least 6) near the image,
its RLE of the image's size; a rejected annotation is reported with its id and the reason and skipped,
or with ``strict=True`` (``--strict``) the conversion stops before writing. Category names must be
unique up to case (``background`` included when it is added). Memory is bounded by the image size.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from mrovseg.data.prepare.coco_checks import annotation_problem, segmentation_problem
from mrovseg.data.prepare.common import PrepareError, PrepareReport
from mrovseg.data.prepare.custom_common import ignore_value, place_split_image, save_label, write_classes

__all__ = ["annotation_mask", "annotation_rle", "paint_instances", "prepare_coco"]

log = logging.getLogger(__name__)


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as err:  # an optional dependency
        raise PrepareError(
            "COCO polygons and RLE need pycocotools: pip install pycocotools (or pip install 'mrovseg[custom]')"
        ) from err
    return mask_utils


def annotation_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """The compressed RLE of one COCO ``segmentation`` (polygon list, RLE or compressed RLE), checked first.

    Raises:
        PrepareError: The segmentation fails :func:`~.coco_checks.segmentation_problem` (the reason).
    """
    problem = segmentation_problem(segmentation, height, width)
    if problem is not None:
        raise PrepareError(f"cannot rasterise a segmentation: {problem}")
    mask_utils = _mask_api()
    if isinstance(segmentation, list):  # polygons
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    counts = segmentation["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def annotation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """``bool (H, W)`` mask of one COCO ``segmentation`` (:func:`annotation_rle`)."""
    return _mask_api().decode(annotation_rle(segmentation, height, width)).astype(bool)


def paint_instances(
    anns: Sequence[dict[str, Any]], cls_of: dict[int, int], height: int, width: int, unlabeled: int
) -> tuple[np.ndarray, int]:
    """The class map of one image's annotations under the overlap rule (module docstring).

    Returns:
        ``(int64 label (H, W), pixels covered by more than one annotation)``.
    """
    mask_utils = _mask_api()
    rles = [annotation_rle(ann["segmentation"], height, width) for ann in anns]  # compact; one mask at a time
    areas = [int(mask_utils.area(rle)) for rle in rles]
    ids = [ann.get("id") if type(ann.get("id")) is int else 0 for ann in anns]
    order = sorted(range(len(anns)), key=lambda i: (not anns[i].get("iscrowd", 0), -areas[i], ids[i]))
    label = np.full((height, width), unlabeled, np.int64)
    seen, overlap = np.zeros((height, width), bool), np.zeros((height, width), bool)
    for i in order:  # later ones win: crowd first, then larger before smaller
        mask = mask_utils.decode(rles[i]).astype(bool)
        label[mask] = cls_of[anns[i]["category_id"]]
        overlap |= seen & mask
        seen |= mask
    return label, int(overlap.sum())


def _load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        if not path.is_file():
            raise PrepareError(f"annotation file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise PrepareError(f"cannot read COCO JSON {path}: {err}") from err
        for key in ("images", "annotations", "categories"):
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise PrepareError(f"{path} has no {key!r} list; expected a COCO-format annotation file")
        data["_path"] = path
        out.append(data)
    return out


def _categories(files: Sequence[dict[str, Any]], background: bool) -> dict[int, str]:
    names: dict[int, str] = {}
    for data in files:
        for cat in data["categories"]:
            if (
                not isinstance(cat, dict)
                or type(cat.get("id")) is not int
                or not str(cat.get("name", "")).strip()
            ):
                raise PrepareError(
                    f"{data['_path']}: category {str(cat)[:80]} needs an integer id and a name"
                )
            cid, name = cat["id"], str(cat["name"]).strip()
            if names.setdefault(cid, name) != name:
                raise PrepareError(
                    f"{data['_path']}: category id {cid} is {name!r} but another file calls it {names[cid]!r}"
                )
    if not names:
        raise PrepareError("the annotation files list no categories")
    taken = (
        {"background": "class 0 'background' (uncovered pixels, --unlabeled background)"}
        if background
        else {}
    )
    for cid, name in sorted(names.items()):
        if name.casefold() in taken:
            hint = "; or pass --unlabeled ignore" if "--unlabeled" in taken[name.casefold()] else ""
            raise PrepareError(
                f"category {cid} {name!r} has the name of {taken[name.casefold()]}; class names must differ "
                f"beyond upper/lower case: rename or merge them in the JSON{hint}"
            )
        taken[name.casefold()] = f"category {cid} {name!r}"
    return dict(sorted(names.items()))


def _image_sizes(files: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """``image id -> entry`` of the files' ``images`` lists, each with an id, a file name and a size."""
    infos: dict[int, dict[str, Any]] = {}
    for data in files:
        for i, info in enumerate(data["images"]):
            ok = isinstance(info, dict) and isinstance(info.get("file_name"), str)
            if not ok or any(type(info.get(k)) is not int for k in ("id", "width", "height")):
                raise PrepareError(
                    f"{data['_path']}: images[{i}] needs an integer id, width and height and a file_name"
                )
            if info["width"] < 1 or info["height"] < 1:
                raise PrepareError(
                    f"{data['_path']}: image {info['id']} has size {info['width']}x{info['height']}"
                )
            infos.setdefault(info["id"], info)
    return infos


def _panoptic_problem(ann: dict[str, Any], cats: dict[int, str]) -> str | None:
    segments = ann.get("segments_info")
    if not isinstance(ann.get("file_name"), str) or not isinstance(segments, list):
        return "it needs a file_name and a segments_info list"
    for seg in segments:
        if not isinstance(seg, dict) or type(seg.get("id")) is not int:
            return f"segment {str(seg)[:40]} has no integer id"
        if seg.get("category_id") not in cats:
            return f"segment {seg['id']} has the unknown category_id {seg.get('category_id')!r}"
    return None


def _checked_annotations(
    files: Sequence[dict[str, Any]], infos: dict[int, dict[str, Any]], cats: dict[int, str], panoptic: bool
) -> tuple[dict[int, list[dict[str, Any]]], list[str]]:
    """``image id -> its accepted annotations`` and one line per rejected annotation (id and reason)."""
    sizes = {image_id: (info["height"], info["width"]) for image_id, info in infos.items()}
    anns: dict[int, list[dict[str, Any]]] = {}
    rejected: list[str] = []
    for data in files:
        for i, ann in enumerate(data["annotations"]):
            problem = annotation_problem(ann, sizes, None if panoptic else cats)
            if problem is None and panoptic:
                problem = _panoptic_problem(ann, cats)
            if problem is None:
                anns.setdefault(ann["image_id"], []).append(ann)
                continue
            name = ann.get("id", f"#{i}") if isinstance(ann, dict) else f"#{i}"
            rejected.append(f"{Path(data['_path']).name}, annotation {name}: {problem}")
    return anns, rejected


def _image_path(images: Path, info: dict[str, Any]) -> Path:
    path = images / str(info["file_name"])
    if not path.is_file():
        path = images / Path(str(info["file_name"])).name
    if not path.is_file():
        raise PrepareError(f"image {info['file_name']!r} (id {info['id']}) not found in {images}")
    with Image.open(path) as img:
        size = img.size
    if size != (int(info["width"]), int(info["height"])):
        raise PrepareError(
            f"image {path} is {size[0]}x{size[1]} but the annotation file says {info['width']}x{info['height']}"
        )
    return path


def _panoptic_label(
    png: Path, segments: Sequence[dict[str, Any]], cls_of: dict[int, int], unlabeled: int
) -> np.ndarray:
    if not png.is_file():
        raise PrepareError(f"panoptic segment PNG not found: {png}")
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    label = np.full(ids.shape, unlabeled, np.int64)
    known = {int(s["id"]): cls_of[int(s["category_id"])] for s in segments}
    for seg_id in np.unique(ids):
        if seg_id == 0:
            continue
        if int(seg_id) not in known:
            raise PrepareError(f"{png} holds segment id {int(seg_id)}, which its segments_info does not list")
        label[ids == seg_id] = known[int(seg_id)]
    return label


def prepare_coco(
    out: Path,
    split: str,
    images: Path,
    annotations: Sequence[Path],
    panoptic_masks: Path | None = None,
    unlabeled: Literal["background", "ignore"] = "background",
    image_mode: str = "copy",
    strict: bool = False,
) -> PrepareReport:
    """Converts COCO-format annotation files of one split into ``out/{images,labels}/<split>``.

    Args:
        out: The custom dataset folder (``classes.txt`` is written or checked).
        split: ``train`` or ``val``.
        images: Folder of the images named in the files' ``images`` lists.
        annotations: Instances/stuff JSON files, or one panoptic JSON.
        panoptic_masks: Folder of the panoptic segment PNGs (panoptic JSON only).
        unlabeled: Uncovered pixels become class 0 ``background`` or the ignore value.
        image_mode: ``copy``, ``symlink`` or ``hardlink``.
        strict: Stop (before writing anything) if any annotation is rejected, instead of skipping it.
    """
    if unlabeled not in ("background", "ignore"):
        raise PrepareError(f"unlabeled must be 'background' or 'ignore', got {unlabeled!r}")
    files = _load(annotations)
    panoptic = any(
        isinstance(a, dict) and "segments_info" in a for data in files for a in data["annotations"][:1]
    )
    if panoptic and (len(files) != 1 or panoptic_masks is None):
        raise PrepareError("a panoptic JSON is converted alone and needs --masks <folder of segment PNGs>")
    offset = 1 if unlabeled == "background" else 0
    cats = _categories(files, background=bool(offset))
    names = (["background"] if offset else []) + list(cats.values())
    k = len(names)
    cls_of = {cid: i + offset for i, cid in enumerate(cats)}
    fill = 0 if offset else ignore_value(k)
    infos = _image_sizes(files)
    anns, rejected = _checked_annotations(files, infos, cats, panoptic)
    if rejected and strict:
        more = f"\n  ... and {len(rejected) - 20} more" if len(rejected) > 20 else ""
        raise PrepareError(
            f"{len(rejected)} annotation(s) rejected (strict: nothing written):\n  "
            + "\n  ".join(rejected[:20])
            + more
        )
    for line in rejected:
        log.warning("skipped %s", line)
    missing = [
        info["file_name"] for image_id, info in sorted(infos.items()) if panoptic and image_id not in anns
    ]
    if missing:
        raise PrepareError(f"image {missing[0]} has no (accepted) entry in the panoptic annotations")
    paths = {image_id: _image_path(images, info) for image_id, info in infos.items()}  # all checked first
    stems = [p.stem for p in paths.values()]
    if len(set(stems)) != len(stems):
        raise PrepareError(f"two images of {images} share a file stem; labels are named by stem")
    write_classes(out, names)
    report = PrepareReport(f"custom ({'panoptic' if panoptic else 'COCO'} JSON)", out)
    report.add(split, "rejected annotations", len(rejected))
    label_dir = out / "labels" / split
    for image_id, info in sorted(infos.items()):
        h, w = int(info["height"]), int(info["width"])
        if panoptic:
            ann = anns[image_id][0]
            label = _panoptic_label(panoptic_masks / ann["file_name"], ann["segments_info"], cls_of, fill)
            if label.shape != (h, w):
                raise PrepareError(f"{panoptic_masks / ann['file_name']} is not {w}x{h} like its image")
        else:
            label, overlap = paint_instances(anns.get(image_id, []), cls_of, h, w, fill)
            report.add(split, "overlapping pixels (smallest annotation wins)", overlap)
        save_label(label, label_dir / f"{paths[image_id].stem}.png", k)
        place_split_image(paths[image_id], out, split, image_mode)
        report.add_samples(split, 1, out / "images" / split, label_dir)
    report.add(split, "classes", k)
    return report
