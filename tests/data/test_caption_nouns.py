"""The one noun rule of captions (``mrovseg.data.captions.extract_nouns``, docs/mgca.md §2), used by
OVSeg's caption mining and by MGCA: real captions give noun phrases without verbs or determiners;
the toy captions give exactly the class names they list (the nouns the toy experiments always had)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mrovseg.data.caption_datamodule import ToyCaptionDataModule
from mrovseg.data.captions import TEMPLATES, extract_nouns, singular, toy_caption
from mrovseg.data.synthetic import ToyWorld
from mrovseg.data.toy_mask_caption_datamodule import ToyMaskCaptionDataModule

# COCO Captions / CC3M-style sentences (CC3M's captions are hypernymised: "actor", "person").
REAL_CAPTIONS = [
    ("A man riding a horse on the beach.", ["man", "horse", "beach"]),
    ("Two dogs playing with a frisbee in the park.", ["dog", "frisbee", "park"]),
    ("A red car stopped at a traffic light.", ["red car", "traffic light"]),
    ("A woman holding an umbrella while walking down the street.", ["woman", "umbrella", "street"]),
    ("A kitchen with a stove, a sink and wooden cabinets.", ["kitchen", "stove", "sink", "wooden cabinet"]),
    ("A cat is sleeping on a laptop keyboard.", ["cat", "laptop keyboard"]),
    ("Children are flying kites at the beach.", ["child", "kite", "beach"]),
    ("A large dining table covered with plates of food.", ["large dining table", "plate", "food"]),
    ("Close up of a pizza with sliced tomatoes and cheese.", ["pizza", "sliced tomato", "cheese"]),
    ("A fire hydrant next to a parked car on the side of the road.", ["fire hydrant", "parked car", "road"]),
    ("actor attends the premiere of the film", ["actor", "premiere", "film"]),
    ("person walking his dog in the snow", ["person", "dog", "snow"]),
    ("A group of people standing in front of a bus.", ["people", "bus"]),
    ("The men are wearing black shirts and blue jeans.", ["man", "black shirt", "blue jeans"]),
    ("Stock photo of a smiling woman with a cup of coffee.", ["smiling woman", "cup", "coffee"]),
    ("A giraffe stands next to a tall tree in a zoo.", ["giraffe", "tall tree", "zoo"]),
    ("Bananas, apples and oranges in a bowl.", ["banana", "apple", "orange", "bowl"]),
    ("A boy's bicycle leaning against a brick wall.", ["boy", "bicycle", "brick wall"]),
    ("There are several sheep grazing in a green field.", ["sheep", "green field"]),
    ("A tennis player hits the ball with his racket.", ["tennis player", "ball", "racket"]),
    ("The sky is blue and the grass is green.", ["sky", "grass"]),
    ("A plate topped with broccoli, rice and chicken.", ["plate", "broccoli", "rice", "chicken"]),
    ("Buses parked near the train station.", ["bus", "train station"]),
    ("A dog and two dogs.", ["dog"]),  # singular and plural are one noun
]


@pytest.mark.parametrize(("caption", "expected"), REAL_CAPTIONS)
def test_real_captions_give_noun_phrases_without_verbs_or_determiners(
    caption: str, expected: list[str]
) -> None:
    assert extract_nouns(caption) == expected


def test_singular_of_regular_irregular_and_invariant_plurals() -> None:
    pairs = {"dogs": "dog", "buses": "bus", "benches": "bench", "puppies": "puppy", "knives": "knife",
             "women": "woman", "firemen": "fireman", "skis": "ski", "movies": "movie", "shoes": "shoe",
             "tomatoes": "tomato", "horses": "horse", "glass": "glass", "cross": "cross", "tennis": "tennis",
             "jeans": "jeans", "sheep": "sheep", "people": "people", "cactus": "cactus",
             "ring": "ring"}  # fmt: skip
    assert {p: singular(p) for p in pairs} == pairs


def test_options_and_errors() -> None:
    cap = "A photo of a brown horse on the beach, with two dogs and a red kite in the sky."
    assert extract_nouns(cap) == ["brown horse", "beach", "dog", "red kite", "sky"]
    assert extract_nouns(cap, max_nouns=2) == ["brown horse", "beach"]
    assert extract_nouns("a big old red london bus", max_words=2) == ["london bus"]
    assert extract_nouns("") == [] and extract_nouns("a photo of it.") == []
    with pytest.raises(TypeError, match="caption must be a string"):
        extract_nouns(None)  # type: ignore[arg-type]


def _listed(caption: str, names: list[str]) -> list[str]:
    """``names`` in the order the toy caption lists them, once each ("background" when none)."""
    if not names:
        return ["background"]
    return sorted(set(names), key=lambda n: caption.index(f" {n}"))


def test_toy_captions_give_exactly_their_class_names() -> None:
    """Every template with every class, and random scenes' worth of classes: the rule gives the listed
    names in caption order (what OVSeg's toy-only parser gave) and what matching the class names gives
    (what the MGCA toy datamodule used), so the toy experiments' nouns are unchanged."""
    vocab = ToyWorld(num_colours=8, num_shapes=7).class_names  # every colour and shape there is
    names = vocab[1:]
    rng = np.random.default_rng(0)
    cases = [[n] for n in names] + [[]]
    cases += [list(rng.choice(names, size=rng.integers(2, 7), replace=False)) for _ in range(300)]
    for template, case in itertools.product(TEMPLATES, cases):
        listed = [f"a {n}" for n in case]
        phrase = ", ".join(listed[:-1]) + " and " + listed[-1] if len(listed) > 1 else "".join(listed)
        caption = template.format(phrase or "the background")
        assert extract_nouns(caption) == extract_nouns(caption, vocab) == _listed(caption, case), caption
    for seed, case in enumerate(cases[:200]):  # toy_caption itself (random order, template, article)
        caption = toy_caption(case, np.random.default_rng(seed))
        assert extract_nouns(caption) == extract_nouns(caption, vocab) == _listed(caption, case), caption


def test_toy_datamodules_nouns_are_the_class_names_of_their_captions() -> None:
    dm = ToyCaptionDataModule(num_train=64, caption_novel=True)
    ds, vocab = dm.train_dataset(), dm.world.class_names
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["nouns"] == extract_nouns(sample["caption"], vocab)
    masks = ToyMaskCaptionDataModule(num_train=32).train_dataset()
    for i in range(len(masks)):
        caption = masks[i]["caption"]
        assert extract_nouns(caption) == extract_nouns(caption, vocab)


def test_ovseg_caption_mining_uses_the_same_rule() -> None:
    from mrovseg.data import captions
    from mrovseg.training import ovseg

    assert ovseg.extract_nouns is captions.extract_nouns
    assert not hasattr(captions, "caption_nouns")  # the toy-only parser is gone
