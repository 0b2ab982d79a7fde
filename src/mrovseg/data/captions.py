"""Captions of the toy world and the nouns they name.

The toy CLIP (``scripts/pretrain_toy_clip.py``) was pretrained on captions such as "a photo of a red
circle and a blue ring."; :func:`toy_caption` writes them the same way (same templates, same order of
random draws), so text-supervised and caption-mining methods see the captions CLIP learnt from.
:func:`caption_nouns` recovers the noun phrases ("red circle", "blue ring"; "background" for an empty
scene): the toy stand-in for OVSeg's NLTK noun extraction from COCO Captions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: Caption templates of the toy CLIP's pretraining (``scripts/pretrain_toy_clip.py``).
TEMPLATES = (
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "a rendering of {}.",
    "a drawing of {}.",
)
_PREFIX = re.compile(r"^(a photo|a picture|an image|a rendering|a drawing) of ")
_ARTICLE = re.compile(r"^(a|an|the) ")


def toy_caption(names: Sequence[str], rng: np.random.Generator) -> str:
    """ "a photo of a red circle, a blue ring and a green cross." (objects shuffled, random template).

    Args:
        names: class names of the objects to mention (empty: the caption names "background").
        rng: generator; draws the object order, then the template (as the toy CLIP's pretraining).
    """
    if len(names):
        parts = [f"a {n}" for n in rng.permutation(list(names))]
        phrase = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    else:
        phrase = f"{rng.choice(['a', 'the'])} background"
    return str(rng.choice(TEMPLATES)).format(phrase)


def caption_nouns(caption: str) -> list[str]:
    """The noun phrases of a toy caption, in order, without articles or duplicates.

    >>> caption_nouns("a photo of a red circle, a blue ring and a red circle.")
    ['red circle', 'blue ring']
    """
    text = _PREFIX.sub("", caption.strip().lower()).rstrip(".").strip()
    nouns: list[str] = []
    for part in re.split(r",\s*|\s+and\s+", text):
        noun = _ARTICLE.sub("", part.strip()).strip()
        if noun and noun not in nouns:
            nouns.append(noun)
    return nouns
