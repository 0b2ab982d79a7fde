"""Class-name vocabularies of the benchmarks, the prompt-template sets, and turning a user's
vocabulary argument (a word list, a benchmark name, a ``.txt`` file or ``toy``) into class names.

The benchmark lists are dataset facts, carried over as data from the public metadata of the datasets
(the registries of SAN / detectron2 / MaskFormer and the Cityscapes scripts). They live in
``class_names.json`` beside this file, each with its source; labels on disk index these lists: label
value ``i`` is ``LIST[i]``. The ViLD templates live in ``templates.json``; the 80 ImageNet templates of
CLIP are open_clip's (``open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES``).

A class name may carry comma-separated synonyms (``"sofa, couch, lounge"``), as in the SAN and
detectron2 metadata; :func:`split_synonyms` splits them. The text side averages the prompt
embeddings over the templates (and synonyms) of a class.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from mrovseg.model.class_names import split_synonyms

__all__ = [
    "ADE_150",
    "ADE_847",
    "CITYSCAPES_19",
    "COCO_STUFF_171",
    "PC_59",
    "PC_459",
    "TEMPLATES",
    "VILD_TEMPLATES",
    "VOCABULARIES",
    "VOC_20",
    "get_templates",
    "get_vocabulary",
    "parse_vocabulary_text",
    "read_vocabulary_file",
    "resolve_vocabulary",
    "split_synonyms",
]

_HERE = Path(__file__).resolve().parent


def _load_json(name: str) -> dict:
    return json.loads((_HERE / name).read_text(encoding="utf-8"))


def _imagenet_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet templates as ``{}`` strings, from open_clip (Radford et al., 2021)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


#: Benchmark name -> class names (label value i is the i-th name); see ``class_names.json``.
VOCABULARIES: dict[str, tuple[str, ...]] = {
    key: tuple(entry["names"]) for key, entry in _load_json("class_names.json")["vocabularies"].items()
}
COCO_STUFF_171 = VOCABULARIES["coco_stuff"]  #: COCO-Stuff-164k, 171 classes.
ADE_150 = VOCABULARIES["ade150"]  #: ADE20K-150, label value = official id - 1.
ADE_847 = VOCABULARIES["ade847"]  #: ADE20K-full, 847 classes in train-id order.
PC_59 = VOCABULARIES["pc59"]  #: Pascal Context, 59 classes.
PC_459 = VOCABULARIES["pc459"]  #: Pascal Context full, 459 classes.
VOC_20 = VOCABULARIES["voc20"]  #: Pascal VOC 2012, 20 object classes.
CITYSCAPES_19 = VOCABULARIES["cityscapes"]  #: Cityscapes, the 19 evaluated classes.

_TEMPLATE_SETS = {key: tuple(e["templates"]) for key, e in _load_json("templates.json")["templates"].items()}
VILD_TEMPLATES: tuple[str, ...] = _TEMPLATE_SETS["vild"]  #: The 14 ViLD templates (Gu et al., 2022).

#: Template-set name -> prompt templates, each with one ``{}`` placeholder for the class name.
#: ``"photo"`` is the single template the toy CLIP was pretrained with (scripts/pretrain_toy_clip.py).
#: ``"imagenet"`` (CLIP's 80 ImageNet templates, ``IMAGENET_TEMPLATES``) is read from open_clip on
#: first use, so importing this module (the dataset checker does) does not import torch/open_clip.
TEMPLATES: dict[str, tuple[str, ...] | None] = {
    "vild": VILD_TEMPLATES,
    "imagenet": None,
    "photo": _TEMPLATE_SETS["photo"],
}


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "IMAGENET_TEMPLATES":
        return tuple(get_templates("imagenet"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_vocabulary(name: str) -> list[str]:
    """Returns the class names of a benchmark, in label order.

    Args:
        name: One of the keys of :data:`VOCABULARIES` (``coco_stuff``, ``ade150``, ``ade847``,
            ``pc59``, ``pc459``, ``voc20``, ``cityscapes``).

    Raises:
        KeyError: For an unknown name; the message lists the known ones.
    """
    if name not in VOCABULARIES:
        raise KeyError(f"unknown vocabulary {name!r}; known: {sorted(VOCABULARIES)}")
    return list(VOCABULARIES[name])


def get_templates(name: str = "vild") -> list[str]:
    """Returns a prompt-template set (``"vild"``: 14, ``"imagenet"``: 80, ``"photo"``: 1 template).

    Raises:
        KeyError: For an unknown name; the message lists the known ones.
    """
    if name not in TEMPLATES:
        raise KeyError(f"unknown template set {name!r}; known: {sorted(TEMPLATES)}")
    if TEMPLATES[name] is None:
        TEMPLATES[name] = _imagenet_templates()
    return list(TEMPLATES[name])


def parse_vocabulary_text(text: str) -> list[str]:
    """Class names of a vocabulary text (a ``.txt`` file, the demo's box): one per line, ``#`` starts a
    comment, blank lines skipped; synonyms stay after commas on their line."""
    lines = (line.split("#", 1)[0].strip() for line in (text or "").splitlines())
    return [line for line in lines if line]


def read_vocabulary_file(path: str | os.PathLike) -> list[str]:
    """Class names of a ``.txt`` file (:func:`parse_vocabulary_text`)."""
    return parse_vocabulary_text(Path(path).read_text())


def resolve_vocabulary(vocabulary: str | os.PathLike | Sequence[str]) -> list[str]:
    """Turns a vocabulary argument into a list of class names.

    Args:
        vocabulary: A list of class names (each may carry comma-separated synonyms, ``"sofa, couch"``);
            or the name of a benchmark vocabulary (``coco_stuff``, ``ade150``, ``ade847``, ``pc59``,
            ``pc459``, ``voc20``, ``cityscapes``) or ``toy`` (the default experiment's world: background
            + 6 colours × 5 shapes); or a ``.txt`` file with one class name per line (``#`` comments).

    Raises:
        ValueError: The vocabulary is empty, has an empty or duplicated entry, or is a string that
            names no known vocabulary or file.
    """
    if isinstance(vocabulary, (str, os.PathLike)):
        name = str(vocabulary).strip()
        path = Path(name).expanduser()
        if name == "toy":
            from mrovseg.data.synthetic import ToyWorld

            names = list(ToyWorld().class_names)
        elif name in VOCABULARIES:
            names = get_vocabulary(name)
        elif path.suffix.lower() == ".txt" and path.is_file():
            names = read_vocabulary_file(path)
        else:
            known = ", ".join(sorted([*VOCABULARIES, "toy"]))
            raise ValueError(
                f"Unknown vocabulary {name!r}. Pass a list of class names, e.g. "
                f'vocabulary=[cat,"sofa, couch"] (Python: vocabulary=["cat", "sofa, couch"]), '
                f"a .txt file with one class per line, or one of: {known}."
            )
    else:
        names = [str(n).strip() for n in vocabulary]
    if not names:
        raise ValueError(
            'The vocabulary is empty: give at least one class name, e.g. vocabulary=[cat,"sofa, couch"].'
        )
    for i, n in enumerate(names):
        if not split_synonyms(n):
            raise ValueError(f"Vocabulary entry {i} is empty ({n!r}); every class needs a name.")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"Class {n!r} appears twice in the vocabulary (entries {seen[n]} and {i}).")
        seen[n] = i
    return names
