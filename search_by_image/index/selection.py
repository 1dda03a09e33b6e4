"""The one place a search's FAISS ID selector is built: the ids a filter allows, less the ids
deleted since the base index was written (tombstones, live_log.py).

A filter's ids are handed over as an array (None: no filter); deleted ids are always subtracted.
Small sets use a hash set (IDSelectorBatch); a large allowed set a bitmap over the id range
(IDSelectorBitmap: one bit per id, 125 kB at a million ids, built in a few ms where a hash set of
half a million ids takes tens).
"""

from __future__ import annotations

from typing import Any, Protocol

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


class Searched(Protocol):
    """What `filtered_nprobe` reads of a store (store.IndexStore)."""

    index: faiss.Index
    manifest: Any

    def __len__(self) -> int: ...


def filtered_nprobe(store: Searched, allowed: np.ndarray | None, k: int) -> int:
    """The lists the store's IVF index probes when `allowed` of its images pass a filter: those
    that hold about 2k allowed images where they are spread evenly (a 1% filter probes about
    2% of the lists for k = 10), never fewer than the tuned `nprobe` nor more than `nlist`.
    Without it the probed lists hold fewer than k allowed images and the exact fallback reads
    every allowed image's descriptor from disk (hundreds of ms at a million images); scanning
    the lists costs time in proportion to their size, selector or not, so probing every list
    a 1% filter's scaled nprobe names (100x) would cost as much again."""
    nprobe, ivf = store.manifest.nprobe, faiss.try_extract_index_ivf(store.index)
    if not nprobe or ivf is None or allowed is None or len(allowed) >= len(store):
        return nprobe
    enough = -(-2 * k * ivf.nlist // max(len(allowed), 1))
    return int(min(ivf.nlist, max(nprobe, enough)))


def _ids(ids: np.ndarray) -> faiss.IDSelector:
    return faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))


def _kept(selector: faiss.IDSelector, *owners: object) -> faiss.IDSelector:
    """`selector` holding references to what it points into (SWIG does not: a bitmap's bytes or
    the inner selector of a Not would otherwise be freed under it)."""
    selector.referenced_objects = list(owners)  # type: ignore[attr-defined]
    return selector
