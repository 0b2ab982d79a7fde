"""Class names with synonyms, the one rule (no torch: the dataset checker imports it too)."""

from __future__ import annotations


def split_synonyms(class_name: str) -> list[str]:
    """Splits a class name with comma-separated synonyms (``"sofa, couch"`` -> ``["sofa", "couch"]``).

    Empty parts are dropped; a name without commas gives a one-element list.
    """
    return [part.strip() for part in str(class_name).split(",") if part.strip()]


def synonym_pairs(class_names: list[str]) -> list[tuple[int, int]]:
    """Pairs ``(a, b)``, a < b, of classes that share a name: their synonym lists (:func:`split_synonyms`,
    compared case-insensitively) intersect, e.g. ADE's ``"earth, ground"`` and ``"land, ground, soil"``.
    Pairwise, not transitive: ``"stool"`` ~ ``"toilet, …, stool"`` ~ ``"pot"`` does not make stool ~ pot."""
    owners: dict[str, list[int]] = {}
    for index, name in enumerate(class_names):
        for synonym in {s.lower() for s in split_synonyms(name)}:
            owners.setdefault(synonym, []).append(index)
    pairs = {(a, b) for group in owners.values() for a in group for b in group if a < b}
    return sorted(pairs)
