"""Captions of toy scenes and the rule that takes nouns (phrases) out of captions.

* :func:`toy_caption` writes the caption of a toy scene the way the toy CLIP was pretrained
  (``scripts/pretrain_toy_clip.py``): "a photo of a red circle, a blue ring and a green cross."
  (objects shuffled, one of :data:`TEMPLATES`), or "a photo of the background." for an empty scene.
* :func:`extract_nouns` is the documented noun rule (``docs/mgca.md`` §2):

  - ``vocabulary`` given: every whole-word, case-insensitive occurrence of a vocabulary entry,
    longest entries first, occurrences not overlapping; each entry counted once, in caption order.
  - no vocabulary (real captions, no parser downloaded): a noun-phrase regex. The caption is
    lower-cased and split at punctuation, at articles and at the connective words of :data:`SPLIT_WORDS`;
    leading determiners / numerals (:data:`DETERMINERS`) are dropped from each chunk, chunks made
    only of :data:`STOP_PHRASES` (caption boilerplate such as "a photo") are dropped, and chunks
    longer than ``max_words`` keep their last ``max_words`` words (the head noun of an English noun
    phrase is at its end).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: Caption templates of the toy CLIP's pretraining (``scripts/pretrain_toy_clip.py``).
TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "a rendering of {}.",
    "a drawing of {}.",
)

#: Words at which the regex rule splits a caption into candidate phrases.
SPLIT_WORDS: tuple[str, ...] = (
    "and", "or", "with", "of", "in", "on", "at", "near", "next", "to", "by", "from", "for", "under",
    "over", "behind", "above", "below", "while", "is", "are", "was", "were", "has", "have", "its",
    "their", "his", "her", "who", "that", "which", "as", "into", "onto", "through", "during",
)  # fmt: skip
#: Leading words dropped from a phrase.
DETERMINERS: tuple[str, ...] = (
    "a", "an", "the", "this", "that", "these", "those", "some", "many", "several", "two", "three",
    "four", "five", "one", "few", "other", "another", "each", "every",
)  # fmt: skip
#: Phrases that are caption boilerplate, not things in the image.
STOP_PHRASES: tuple[str, ...] = (
    "photo", "picture", "image", "rendering", "drawing", "view", "close up", "closeup", "illustration",
    "stock photo", "front", "top", "side", "background", "way", "lot", "day", "time",
)  # fmt: skip


def toy_caption(names: Sequence[str], rng: np.random.Generator) -> str:
    """The caption of a toy scene whose visible objects are ``names`` (may be empty).

    Args:
        names: class names of the objects to mention, e.g. ``["red circle", "blue ring"]``.
        rng: the scene's generator (picks the order and the template).
    """
    if len(names):
        listed = [f"a {n}" for n in rng.permutation(list(names))]
        phrase = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    else:
        phrase = f"{rng.choice(['a', 'the'])} background"
    return str(rng.choice(TEMPLATES)).format(phrase)


def _vocabulary_nouns(caption: str, vocabulary: Sequence[str]) -> list[str]:
    text = caption.lower()
    taken = np.zeros(len(text) + 1, bool)
    found: list[tuple[int, str]] = []
    for entry in sorted({v.strip().lower() for v in vocabulary if v.strip()}, key=len, reverse=True):
        for match in re.finditer(rf"(?<![\w-]){re.escape(entry)}(?![\w-])", text):
            if not taken[match.start() : match.end()].any():
                taken[match.start() : match.end()] = True
                found.append((match.start(), entry))
    out: list[str] = []
    for _, entry in sorted(found):
        if entry not in out:
            out.append(entry)
    return out


def _regex_nouns(caption: str, max_words: int) -> list[str]:
    text = re.sub(r"[^a-z\s,.;:!?()'-]", " ", caption.lower())
    split = r"[,.;:!?()]|\b(?:" + "|".join((*SPLIT_WORDS, "a", "an", "the")) + r")\b"
    out: list[str] = []
    for chunk in re.split(split, text):
        words = [w.strip("'-") for w in chunk.split()]
        words = [w for w in words if w]
        while words and words[0] in DETERMINERS:
            words = words[1:]
        words = words[-max_words:]
        phrase = " ".join(words)
        if phrase and phrase not in STOP_PHRASES and phrase not in out:
            out.append(phrase)
    return out


def extract_nouns(
    caption: str, vocabulary: Sequence[str] | None = None, max_words: int = 3, max_nouns: int | None = None
) -> list[str]:
    """The nouns / noun phrases of a caption by the rule of the module docstring.

    Args:
        caption: the caption.
        vocabulary: phrases to look for; None uses the noun-phrase regex.
        max_words: longest phrase kept by the regex rule (its last words).
        max_nouns: keep at most this many (the first ones); None keeps all.
    """
    if not isinstance(caption, str):
        raise TypeError(f"A caption must be a string, got {type(caption).__name__}: {caption!r}.")
    nouns = (
        _vocabulary_nouns(caption, vocabulary) if vocabulary is not None else _regex_nouns(caption, max_words)
    )
    return nouns[:max_nouns] if max_nouns is not None else nouns


_TEMPLATE_PREFIX = re.compile(r"^(a photo|a picture|an image|a rendering|a drawing) of ")
_ARTICLE = re.compile(r"^(a|an|the) ")


def caption_nouns(caption: str) -> list[str]:
    """The exact inverse of :func:`toy_caption`: its noun phrases, in order, without articles or
    duplicates ("background" for an empty scene). OVSeg's caption mining uses it on toy captions as
    the stand-in for its NLTK noun extraction from COCO Captions; real captions use :func:`extract_nouns`.

    >>> caption_nouns("a photo of a red circle, a blue ring and a red circle.")
    ['red circle', 'blue ring']
    """
    text = _TEMPLATE_PREFIX.sub("", caption.strip().lower()).rstrip(".").strip()
    nouns: list[str] = []
    for part in re.split(r",\s*|\s+and\s+", text):
        noun = _ARTICLE.sub("", part.strip()).strip()
        if noun and noun not in nouns:
            nouns.append(noun)
    return nouns
