"""Queries searched upright and turned a quarter each way: photos stored sideways are found.

Many photos reach a collection, or a search, sideways: EXIF orientation dropped by a messaging
app or an export, scans, and the INRIA Holidays set itself. A CNN descriptor of a photo turned 90
degrees is another descriptor, so the upright copy of a sideways query (or the sideways copy of
an upright one) ranked low. The query is therefore also embedded turned 90 and 270 degrees, at
the model's size (two more images in the query's round of forward passes, batcher.py), and every
indexed image keeps its best score over the three, the turned ones less PENALTY: a turn must beat
the upright score by that much to count, so results that match upright keep their order and
the score's meaning (match_kinds.py). 180 degrees is not searched: photos stored wrongly come
sideways. Gain, cost, and the turned queries at a smaller size (cheaper, less found): bench/
README.md, "Photos stored sideways"; PENALTY chosen there on Holidays, a round value on a
plateau, and checked on the held-out sets.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from search_by_image.model.preprocessing import Preprocessing
from search_by_image.ranking import straighten

#: The quarter turns searched besides the upright query.
TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
#: Subtracted from a turned query's scores before they are merged with the upright ones.
PENALTY = 0.1
#: Whether a query turned a few degrees with flat corners is also searched straightened.
STRAIGHTEN = True


def penalty(view: int) -> float:
    """What a view's scores lose before they are merged: nothing for the upright query (view 0)
    or its straightened view (after the quarter turns, `views`), PENALTY for a quarter turn."""
    return PENALTY if 0 < view <= len(TURNS) else 0.0


def views(image: Image.Image, preprocessing: Preprocessing) -> list[np.ndarray]:
    """The model's inputs for a query: upright, then each quarter turn, then, when the photo was
    turned a few degrees on its frame (its corners left flat: straighten.corner_turn), turned
    back and cut inside those corners."""
    out = [preprocessing(image)] + [preprocessing(image.transpose(turn)) for turn in TURNS]
    if STRAIGHTEN:
        turn = straighten.corner_turn(np.asarray(image.convert("L")))
        if turn is not None:
            out.append(preprocessing(straighten.straightened(image, turn)))
    return out


def merged(hits: list[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """The top `k` (id, score) over the upright query's hits (first) and the turned ones' less
    PENALTY, each id at its best. Exact from each list's own top k: an id missing from a list
    scores there below k others that outrank it in the merge anyway."""
    best: dict[int, float] = {}
    for view, found in enumerate(hits):
        for image_id, score in found:
            score -= penalty(view)
            if score > best.get(image_id, -np.inf):
                best[image_id] = score
    return sorted(best.items(), key=lambda hit: -hit[1])[:k]
