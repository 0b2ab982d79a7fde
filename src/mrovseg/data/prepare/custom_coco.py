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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from mrovseg.data.prepare.common import PrepareError, PrepareReport
from mrovseg.data.prepare.custom_common import ignore_value, place_split_image, save_label, write_classes

__all__ = ["annotation_mask", "paint_instances", "prepare_coco"]


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_utils
    except ImportError as err:  # an optional dependency
        raise PrepareError(
            "COCO polygons and RLE need pycocotools: pip install pycocotools (or pip install 'mrovseg[custom]')"
        ) from err
    return mask_utils


def annotation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """``bool (H, W)`` mask of one COCO ``segmentation`` (polygon list, RLE or compressed RLE)."""
    mask_utils = _mask_api()
    if isinstance(segmentation, list):  # polygons
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    elif isinstance(segmentation, dict):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise PrepareError(f"unknown segmentation format {type(segmentation).__name__}")
    return mask_utils.decode(rle).astype(bool)


def paint_instances(
    anns: Sequence[dict[str, Any]], cls_of: dict[int, int], height: int, width: int, unlabeled: int
) -> tuple[np.ndarray, int]:
    """The class map of one image's annotations under the overlap rule (module docstring).

    Returns:
        ``(int64 label (H, W), pixels covered by more than one annotation)``.
    """
    masks = [(ann, annotation_mask(ann["segmentation"], height, width)) for ann in anns]
    order = sorted(masks, key=lambda am: (not am[0].get("iscrowd", 0), -int(am[1].sum()), am[0].get("id", 0)))
    label = np.full((height, width), unlabeled, np.int64)
    covered = np.zeros((height, width), np.int32)
    for ann, mask in order:  # later ones win: crowd first, then larger before smaller
        label[mask] = cls_of[ann["category_id"]]
        covered += mask
    return label, int((covered > 1).sum())


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
            if key not in data:
                raise PrepareError(f"{path} has no {key!r} list; expected a COCO-format annotation file")
        data["_path"] = path
        out.append(data)
    return out


def _categories(files: Sequence[dict[str, Any]]) -> dict[int, str]:
    names: dict[int, str] = {}
    for data in files:
        for cat in data["categories"]:
            cid, name = int(cat["id"]), str(cat["name"]).strip()
            if names.setdefault(cid, name) != name:
                raise PrepareError(
                    f"{data['_path']}: category id {cid} is {name!r} but another file calls it {names[cid]!r}"
                )
    if not names:
        raise PrepareError("the annotation files list no categories")
    return dict(sorted(names.items()))


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
    """
    if unlabeled not in ("background", "ignore"):
        raise PrepareError(f"unlabeled must be 'background' or 'ignore', got {unlabeled!r}")
    files = _load(annotations)
    panoptic = any("segments_info" in a for data in files for a in data["annotations"][:1])
    if panoptic and (len(files) != 1 or panoptic_masks is None):
        raise PrepareError("a panoptic JSON is converted alone and needs --masks <folder of segment PNGs>")
    cats = _categories(files)
    offset = 1 if unlabeled == "background" else 0
    names = (["background"] if offset else []) + list(cats.values())
    k = len(names)
    cls_of = {cid: i + offset for i, cid in enumerate(cats)}
    fill = 0 if offset else ignore_value(k)
    infos: dict[int, dict[str, Any]] = {}
    anns: dict[int, list[dict[str, Any]]] = {}
    for data in files:
        for info in data["images"]:
            infos.setdefault(int(info["id"]), info)
        for ann in data["annotations"]:
            if not panoptic and int(ann["category_id"]) not in cats:
                raise PrepareError(
                    f"{data['_path']}: annotation {ann.get('id')} has unknown category {ann['category_id']}"
                )
            anns.setdefault(int(ann["image_id"]), []).append(ann)
    paths = {image_id: _image_path(images, info) for image_id, info in infos.items()}  # all checked first
    stems = [p.stem for p in paths.values()]
    if len(set(stems)) != len(stems):
        raise PrepareError(f"two images of {images} share a file stem; labels are named by stem")
    write_classes(out, names)
    report = PrepareReport(f"custom ({'panoptic' if panoptic else 'COCO'} JSON)", out)
    label_dir = out / "labels" / split
    for image_id, info in sorted(infos.items()):
        h, w = int(info["height"]), int(info["width"])
        if panoptic:
            if image_id not in anns:
                raise PrepareError(f"image {info['file_name']} has no entry in the panoptic annotations")
            ann = anns[image_id][0]
            for seg in ann["segments_info"]:
                if int(seg["category_id"]) not in cats:
                    raise PrepareError(
                        f"segment {seg['id']} of {ann['file_name']} has unknown category {seg['category_id']}"
                    )
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
