"""ADE20K-full (``ADE20K_2021_17_01``) → 847-class uint16 TIFF labels (ignore 65535) and resized images.

Follows MaskFormer's ``datasets/prepare_ade20k_sem_seg_full.py`` as carried by SAN and CAT-Seg
(https://github.com/KU-CVLAB/CAT-Seg/blob/main/datasets/prepare_ade20k_full.py):

- the object class of a pixel of ``<image>_seg.png`` is ``(R // 10) * 256 + G``;
- the 847 evaluated classes (:data:`ADE847_DATASET_IDS`, in train-id order, names in
  :data:`mrovseg.data.vocabularies.ADE_847`) become ``0..846``; every other class and 0 become 65535;
- images whose short side exceeds 512 are resized to a short side of 512 (image bilinear, label
  nearest) and every image is re-encoded as JPEG with Pillow's default quality, as that script does.

Differences, on purpose: samples are found by walking ``images/ADE/<split>`` for ``*.jpg`` files with
a ``*_seg.png`` beside them instead of reading ``index_ade20k.pkl`` (the same files, without
unpickling); images are read in their stored orientation and always written as RGB.

Expected download (``--src``, the unzipped ``ADE20K_2021_17_01`` folder)::

    <src>/images/ADE/{training,validation}/<scene folders>/ADE_*.jpg and ADE_*_seg.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mrovseg.data.image_io import ImageReadError, load_image
from mrovseg.data.prepare.common import (
    PrepareError,
    PrepareReport,
    base_parser,
    make_lut,
    parallel_map,
    require_dir,
    run_cli,
    save_tiff,
)

__all__ = ["ADE847_DATASET_IDS", "ade847_lut", "decode_ade_seg", "main", "prepare_ade847"]

# fmt: off
#: ADE20K-full object-class ids (``(R // 10) * 256 + G`` of ``*_seg.png``) of the 847 classes, in train-id order.
#: Source: https://github.com/MendelXu/SAN/blob/main/san/data/datasets/register_ade20k_full.py
#: (``ADE20K_SEM_SEG_FULL_CATEGORIES[*]["id"]``; identical in CAT-Seg's ``datasets/prepare_ade20k_full.py``).
ADE847_DATASET_IDS: tuple[int, ...] = (
    2978, 312, 2420, 2855, 2131, 976, 447, 165, 2377, 838, 350, 1831, 1125, 3055, 401, 1610, 1910, 2684, 471,
    687, 774, 2473, 2264, 1735, 2994, 1564, 1276, 2178, 2329, 57, 907, 913, 1395, 2138, 2272, 2128, 724, 155,
    2053, 2380, 689, 1788, 3087, 2530, 581, 2388, 2985, 2454, 2096, 137, 294, 212, 2185, 524, 2212, 943,
    1869, 2251, 2793, 2423, 1121, 266, 1948, 1744, 783, 571, 627, 629, 491, 1374, 223, 3016, 2598, 978, 239,
    608, 236, 2531, 2616, 591, 327, 2679, 1451, 181, 420, 2821, 1023, 855, 2733, 2928, 1240, 77, 1969, 2880,
    14, 1936, 2828, 631, 103, 3144, 308, 1282, 38, 1563, 29, 480, 2569, 247, 187, 778, 2243, 1941, 2833, 120,
    95, 2836, 1087, 868, 1401, 220, 47, 843, 123, 2537, 1927, 2337, 1702, 64, 249, 642, 1981, 609, 2840,
    2586, 1393, 2704, 1304, 146, 1494, 2739, 389, 1551, 131, 738, 161, 747, 1919, 3109, 2179, 2989, 206,
    1930, 1002, 2254, 1708, 2526, 160, 2901, 2262, 44, 597, 2235, 1260, 682, 2151, 3107, 432, 1098, 2932,
    461, 410, 2046, 533, 1481, 1858, 894, 1322, 1891, 1756, 49, 1272, 1229, 2850, 1784, 2962, 259, 319, 954,
    1974, 1013, 2356, 97, 318, 592, 2885, 1017, 851, 1407, 1332, 303, 2714, 1924, 1346, 1081, 1583, 2727,
    2509, 2123, 602, 202, 10, 490, 530, 2213, 1884, 2934, 2687, 387, 2668, 982, 2547, 1474, 877, 1391, 414,
    698, 2019, 2422, 3010, 1139, 753, 1747, 2175, 1301, 1033, 1789, 2939, 2730, 1652, 90, 1349, 2830, 1485,
    2370, 2155, 118, 1402, 1957, 3130, 1197, 52, 2688, 96, 762, 772, 1857, 2315, 1016, 643, 3105, 1849, 791,
    349, 6, 3114, 1587, 1233, 559, 1223, 3049, 1943, 853, 709, 1390, 2748, 2007, 1546, 1513, 2600, 2538,
    1790, 194, 326, 2877, 594, 2036, 1662, 2366, 1754, 418, 2553, 1951, 1963, 918, 2086, 997, 2731, 704,
    1365, 569, 3108, 948, 839, 63, 1305, 378, 2362, 2734, 2982, 2398, 1119, 382, 1141, 1805, 3102, 2341,
    1131, 2316, 2626, 3104, 198, 1896, 2800, 190, 3131, 1463, 357, 929, 209, 912, 1164, 1509, 2539, 3116,
    2615, 1644, 818, 242, 2217, 2347, 2686, 2300, 572, 789, 358, 2443, 101, 2969, 2692, 606, 2339, 1533,
    2060, 1782, 495, 371, 2707, 889, 3156, 2683, 1499, 1135, 1619, 125, 2838, 2792, 1695, 746, 1343, 1370,
    2858, 145, 2565, 1892, 1103, 286, 170, 3073, 922, 1655, 1602, 2160, 1151, 2176, 2239, 132, 394, 1424,
    607, 700, 116, 1425, 2676, 141, 2360, 2449, 897, 317, 2228, 2351, 1543, 656, 1088, 373, 2472, 2892, 1740,
    3067, 1367, 188, 79, 1633, 1885, 677, 1779, 1297, 2334, 3027, 2735, 1791, 2405, 1748, 2983, 3035, 2824,
    2168, 385, 2148, 2465, 175, 390, 268, 2722, 2857, 3088, 2926, 2782, 1378, 1934, 2072, 2889, 944, 1158,
    1383, 867, 2145, 1915, 361, 402, 482, 2761, 300, 1554, 636, 260, 1186, 871, 2859, 2103, 208, 2236, 2012,
    2462, 1462, 2832, 2617, 1024, 1129, 18, 376, 134, 407, 434, 2017, 2717, 2005, 2993, 1545, 1445, 2831,
    1161, 2411, 2949, 1769, 552, 2327, 939, 3013, 1986, 1486, 2723, 1549, 2649, 1020, 392, 422, 1419, 2099,
    2464, 3058, 430, 675, 2941, 2955, 2355, 840, 32, 2338, 1232, 2834, 2991, 2879, 444, 1657, 2246, 296, 245,
    2661, 1202, 1714, 251, 1095, 1828, 311, 2732, 947, 2115, 2738, 2525, 2194, 634, 740, 2682, 2020, 1156,
    1036, 1295, 1181, 3037, 1614, 736, 893, 2047, 1274, 1361, 3036, 2606, 2797, 2022, 2876, 2758, 472, 3028,
    882, 1189, 743, 3122, 2401, 468, 1061, 1523, 3059, 2843, 2853, 1529, 214, 3032, 3071, 277, 813, 426,
    1039, 727, 1508, 2490, 2299, 768, 1172, 537, 1847, 1664, 1110, 1014, 662, 121, 227, 2410, 2165, 2696,
    3005, 1231, 635, 292, 2690, 65, 2607, 2574, 1188, 456, 2913, 459, 1955, 827, 1111, 2412, 2997, 528, 366,
    1863, 500, 1001, 1958, 1441, 809, 210, 435, 718, 1674, 388, 1572, 1584, 1944, 674, 99, 2352, 1019, 1763,
    185, 554, 1066, 2508, 951, 2822, 415, 297, 1914, 2619, 1338, 2505, 955, 2786, 238, 3000, 2763, 299, 822,
    1288, 3101, 2894, 992, 489, 2157, 2309, 1576, 1810, 2964, 2662, 2087, 1569, 503, 1505, 1468, 1613, 1138,
    1256, 2715, 2846, 477, 2576, 108, 2245, 1162, 2149, 2183, 858, 1324, 1055, 1741, 149, 615, 825, 2143,
    304, 283, 2322, 3017, 2510, 1960, 265, 2282, 2184, 1461, 3113, 2372, 2166, 232, 693, 1945, 3039, 2494,
    1908, 2827, 280, 2950, 1044, 288, 2863, 1342, 2409, 1258, 2249, 2862, 920, 1607, 2802, 610, 3129, 1108,
    2823, 476, 2641, 2788, 2070, 1368, 2903, 699, 2844, 942, 2663, 457, 2701, 2540, 2231, 2746, 1738, 2350,
    2808, 2025, 2541, 2156, 126, 2512, 831, 2503, 2039, 2774, 886, 919, 2240, 2636, 963, 1218, 1406, 1420,
    526, 2639, 975, 1921, 2305, 1193, 2517, 2809, 1647, 314, 2560, 545, 1345, 775, 603, 1163, 1641, 1678,
    2450, 2915, 42, 2242, 2741, 1143, 862, 1654, 1826, 1689, 3124, 2710, 152, 549, 360, 1982, 1478, 2203,
    2612, 2956, 2681, 437, 2171, 1933, 3110, 1824, 2803, 234, 764, 177, 817, 3145, 1262, 864, 2359, 2992,
    1725, 2667, 2484, 1133, 1667, 2847, 932, 1392, 2573, 2140, 1046, 264, 2927, 2752, 679, 2493, 1658, 2466,
    1057, 2444, 2093, 2248, 2432, 726, 816, 1171, 2766, 2900, 2313, 488, 2265, 2043, 332, 1771, 2320, 2646,
    1089, 2826, 3148,
)
# fmt: on

EXPECTED = (
    "<src>/images/ADE/{training,validation}/**/ADE_*.jpg with ADE_*_seg.png beside each image "
    "(ADE20K_2021_17_01 from https://groups.csail.mit.edu/vision/datasets/ADE20K/)"
)
IGNORE = 65535


def ade847_lut() -> np.ndarray:
    """Object-class id → train id (``0..846``), 65535 for all other ids."""
    return make_lut(26 * 256, {cid: i for i, cid in enumerate(ADE847_DATASET_IDS)}, default=IGNORE)


_LUT = ade847_lut()


def decode_ade_seg(seg_path: Path) -> np.ndarray:
    """Object-class map ``(R // 10) * 256 + G`` of an ADE20K ``*_seg.png`` (``int32 (H, W)``)."""
    try:
        with Image.open(seg_path) as img:
            seg = np.asarray(img.convert("RGB") if img.mode in ("RGBA", "P") else img)
    except (OSError, ValueError) as err:
        raise PrepareError(f"cannot read {seg_path}: {err}") from err
    if seg.ndim != 3 or seg.shape[2] < 2:
        raise PrepareError(f"{seg_path} is not an RGB ADE20K segmentation (shape {seg.shape})")
    return (seg[:, :, 0].astype(np.int32) // 10) * 256 + seg[:, :, 1].astype(np.int32)


def _target_size(h: int, w: int, max_short: int) -> tuple[int, int] | None:
    # MaskFormer's rule: shrink only when the short side exceeds ``max_short``.
    if w >= h > max_short:
        return max_short, round(w / float(h) * max_short)
    if h >= w > max_short:
        return round(h / float(w) * max_short), max_short
    return None


def _convert(job: tuple[Path, Path, Path, Path, int]) -> None:
    image_path, seg_path, out_image, out_label, max_short = job
    try:
        image = load_image(image_path, exif_transpose=False)
    except ImageReadError as err:
        raise PrepareError(str(err)) from err
    classes = decode_ade_seg(seg_path)
    if classes.shape != image.shape[:2]:
        raise PrepareError(f"{seg_path} is {classes.shape} but its image {image_path} is {image.shape[:2]}")
    size = _target_size(*classes.shape, max_short)
    if size is not None:
        h_new, w_new = size
        image = cv2.resize(image, (w_new, h_new), interpolation=cv2.INTER_LINEAR)
        classes = cv2.resize(classes, (w_new, h_new), interpolation=cv2.INTER_NEAREST)
    out_image.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out_image, format="JPEG")
    save_tiff(_LUT[np.clip(classes, 0, len(_LUT) - 1)].astype(np.uint16), out_label)


def prepare_ade847(
    src: Path,
    root: Path,
    splits: Sequence[str] = ("validation",),
    max_short_side: int = 512,
    workers: int = 1,
) -> PrepareReport:
    """Writes ``<root>/ADE20K_2021_17_01/{images,annotations}_detectron2/<split>``.

    Args:
        src: The unzipped ``ADE20K_2021_17_01`` folder.
        root: Dataset root (may contain ``src``).
        splits: Official split folders (``validation``; ``training`` too if wanted).
        max_short_side: Short side above which images and labels are shrunk (512 in MaskFormer).
        workers: Processes converting samples.
    """
    report = PrepareReport("ade847", root)
    out_root = root / "ADE20K_2021_17_01"
    split_dirs = [  # every input is checked before anything is converted
        (split, require_dir(src / "images" / "ADE" / split, f"ADE20K-full {split} image", EXPECTED))
        for split in splits
    ]
    for split, split_dir in split_dirs:
        out_images = out_root / "images_detectron2" / split
        out_labels = out_root / "annotations_detectron2" / split
        jobs = []
        for image_path in sorted(split_dir.rglob("*.jpg")):
            seg_path = image_path.with_name(image_path.stem + "_seg.png")
            if not seg_path.is_file():
                raise PrepareError(
                    f"image {image_path} has no segmentation: expected {seg_path}\nexpected: {EXPECTED}"
                )
            jobs.append(
                (
                    image_path,
                    seg_path,
                    out_images / image_path.name,
                    out_labels / f"{image_path.stem}.tif",
                    max_short_side,
                )
            )
        if not jobs:
            raise PrepareError(f"no *.jpg images under {split_dir}\nexpected: {EXPECTED}")
        parallel_map(_convert, jobs, workers)
        report.add_samples(split, len(jobs), out_images, out_labels)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_ade847.py --src <ADE20K_2021_17_01> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the unzipped ADE20K_2021_17_01 folder", image_mode=False)
    parser.add_argument(
        "--splits", nargs="+", default=["validation"], help="official splits (default: validation)"
    )
    parser.add_argument(
        "--max-short-side", type=int, default=512, help="shrink images whose short side exceeds this"
    )
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_ade847(args.src, args.root, args.splits, args.max_short_side, args.workers)
    )
