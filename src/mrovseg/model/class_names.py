"""Class names with synonyms, the one rule (no torch: the dataset checker imports it too)."""

from __future__ import annotations


def split_synonyms(class_name: str) -> list[str]:
    """Splits a class name with comma-separated synonyms (``"sofa, couch"`` -> ``["sofa", "couch"]``).

    Empty parts are dropped; a name without commas gives a one-element list.
    """
    return [part.strip() for part in str(class_name).split(",") if part.strip()]
