"""The one place a search's FAISS ID selector is built: the ids a filter allows, less the ids
deleted since the base index was written (tombstones, live_log.py).

A filter's ids are handed over as an array (None: no filter); deleted ids are always subtracted.
Small sets use a hash set (IDSelectorBatch); a large allowed set a bitmap over the id range
(IDSelectorBitmap: one bit per id, 125 kB at a million ids, built in a few ms where a hash set of
half a million ids takes tens).
"""

from __future__ import annotations

import faiss
import numpy as np

#: Allowed ids above which a bitmap beats a hash set.
BITMAP_FROM = 50_000


def selector(allowed: np.ndarray | None, deleted: np.ndarray, id_limit: int) -> faiss.IDSelector | None:
    """The selector passing `allowed` ids (every id when None) that are not `deleted`; None when
    nothing is excluded. `id_limit`: every id is below it. The caller keeps the returned object
    (and the arrays it was built from) alive while FAISS searches with it."""
    if allowed is None:
        if not len(deleted):
            return None
        inner = _ids(deleted)
        return _kept(faiss.IDSelectorNot(inner), inner)
    allowed = np.asarray(allowed, np.int64)
    allowed = allowed[allowed < id_limit]  # ids written after this index: not in it
    if len(deleted):
        allowed = allowed[~np.isin(allowed, deleted)]
    if len(allowed) < BITMAP_FROM:
        return _ids(allowed)
    bits = np.zeros(id_limit, bool)
    bits[allowed] = True
    packed = np.packbits(bits, bitorder="little")
    return _kept(faiss.IDSelectorBitmap(id_limit, faiss.swig_ptr(packed)), packed)


def _ids(ids: np.ndarray) -> faiss.IDSelector:
    return faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))


def _kept(selector: faiss.IDSelector, *owners: object) -> faiss.IDSelector:
    """`selector` holding references to what it points into (SWIG does not: a bitmap's bytes or
    the inner selector of a Not would otherwise be freed under it)."""
    selector.referenced_objects = list(owners)  # type: ignore[attr-defined]
    return selector
