"""The levers bench/quality_copies.py measures: each a change of settings and a patch of module
constants, applied only around its own variant's searches. "today" is the product before any of
them (every lever off); "default" the product as shipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from search_by_image.ranking import rotations, verifier


@contextmanager
def patched(*constants: tuple[Any, str, Any]) -> Iterator[None]:
    """Module constants set for the block: (module, attribute, value) each."""
    saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in constants]
    for module, attribute, value in constants:
        setattr(module, attribute, value)
    try:
        yield
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)


def _patch(*constants: tuple[Any, str, Any]) -> Callable[[], Any]:
    return lambda: patched(*constants)


WIDE_OFF = (verifier, "WIDE_TOP", 0)
STRAIGHTEN_OFF = (rotations, "STRAIGHTEN", False)

#: name -> (settings changes, the patch of its searches)
LEVERS: dict[str, tuple[dict, Callable[[], Any]]] = {
    "today": ({}, _patch(WIDE_OFF, STRAIGHTEN_OFF)),
    "default": ({}, _patch()),
    "verify top 30 always": ({"verify_top": 30}, _patch(WIDE_OFF, STRAIGHTEN_OFF)),
    "wide 30 when weak": ({}, _patch((verifier, "WIDE_TOP", 30), STRAIGHTEN_OFF)),
    "wide 40 when weak": ({}, _patch(STRAIGHTEN_OFF)),
    "wide 50 when weak": ({}, _patch((verifier, "WIDE_TOP", 50), STRAIGHTEN_OFF)),
    "straightened view": ({}, _patch(WIDE_OFF)),
}
