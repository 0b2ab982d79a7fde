"""Vocabularies and templates: lengths, uniqueness, and consistency with the dataset id tables."""

import pytest

from mrovseg.data import vocabularies as voc
from mrovseg.data.prepare.coco_stuff import COCO_STUFF_171_IDS
from mrovseg.data.prepare.pascal_context import PC59_DATASET_IDS

EXPECTED_SIZES = {
    "coco_stuff": 171,
    "ade150": 150,
    "ade847": 847,
    "pc59": 59,
    "pc459": 459,
    "voc20": 20,
    "cityscapes": 19,
}


@pytest.mark.parametrize(("name", "size"), EXPECTED_SIZES.items())
def test_vocabulary_sizes_and_names(name: str, size: int) -> None:
    names = voc.get_vocabulary(name)
    assert len(names) == size
    assert len(set(names)) == size, "duplicate names"
    assert all(n and n == n.strip() for n in names), "empty or padded names"
    assert all(voc.split_synonyms(n) for n in names)


def test_known_entries() -> None:
    assert voc.COCO_STUFF_171[0] == "person" and voc.COCO_STUFF_171[80] == "banner"
    assert voc.COCO_STUFF_171[-1] == "wood"
    assert voc.ADE_150[:3] == ("wall", "building", "sky") and voc.ADE_150[8] == "window"
    assert voc.ADE_847[0] == "wall" and voc.ADE_847[-1] == "adding machine, totalizer, totaliser"
    assert voc.PC_459[0] == "accordion" and voc.PC_459[-1] == "wool"
    assert voc.CITYSCAPES_19[0] == "road" and voc.CITYSCAPES_19[-1] == "bicycle"


def test_pc59_ids_point_at_the_same_classes_of_pc459() -> None:
    # LabelMap id v is PC_459[v - 1]; the 59-class subset must name the same classes.
    full = [voc.PC_459[i - 1] for i in PC59_DATASET_IDS]
    assert [("diningtable" if n == "table" else n) for n in full] == list(voc.PC_59)


def test_coco_stuff_ids() -> None:
    assert len(COCO_STUFF_171_IDS) == 171 and COCO_STUFF_171_IDS[11] == 13 and COCO_STUFF_171_IDS[-1] == 182


def test_templates() -> None:
    vild, imagenet = voc.get_templates("vild"), voc.get_templates("imagenet")
    assert len(vild) == 14 and len(imagenet) == 80
    assert len(set(imagenet)) == 80
    assert all(t.count("{}") == 1 for t in vild + imagenet)
    assert vild[0].format("cat") == "a photo of a cat."


def test_split_synonyms_and_errors() -> None:
    assert voc.split_synonyms("sofa, couch, lounge") == ["sofa", "couch", "lounge"]
    assert voc.split_synonyms("cat") == ["cat"]
    with pytest.raises(KeyError, match="known"):
        voc.get_vocabulary("ade151")
    with pytest.raises(KeyError, match="known"):
        voc.get_templates("nope")
