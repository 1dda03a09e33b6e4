"""The search of an uploaded photo, whole: its filters checked (cheap, first), the upload decoded
within the decode budget (cut to a region when one is given, then reduced to the model's input
size), embedded, searched and verified, all against one snapshot. POST /search parses the request
and presents what `search` found; evaluation calls the same function, so what it measures is
what users get."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import partial

from PIL import Image

from search_by_image.catalog.filters import Condition
from search_by_image.images import capture_time
from search_by_image.images.decoding import reduced
from search_by_image.images.regions import Box, crop_to_box
from search_by_image.images.rejections import decode_upload
from search_by_image.ranking import collapse
from search_by_image.ranking.query_keypoints import larger_view
from search_by_image.serving.snapshot import Hits, Snapshot


@dataclass(frozen=True)
class Upload:
    """What a search asks: the uploaded bytes, how many results from where, the filters and the
    region of the photo to search."""

    data: bytes
    k: int
    offset: int = 0
    conditions: dict[str, Condition] = field(default_factory=dict)
    box: Box | None = None
    #: one result per photo: verified copies folded into the best-ranked (ranking/collapse.py)
    collapse: bool = False


@dataclass(frozen=True)
class Found:
    """The decoded query (cut to its region), the region in pixels, and its results."""

    image: Image.Image
    box_px: tuple[int, int, int, int] | None
    decode_ms: float
    hits: Hits


def decode_query(
    data: bytes, max_pixels: int, snapshot: Snapshot, box: Box | None
) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """The query image, and the box in pixels: decoded at the model's input size, or at full
    size and cut to `box` first when one is given, all inside the decode budget."""
    size_for = snapshot.embedder.preprocessing.resized_size
    if box is None:
        return decode_upload(data, max_pixels, size_for), None

    def cut(image):
        region, box_px = crop_to_box(image, box)
        return reduced(region, size_for(region.width, region.height)), box_px

    return decode_upload(data, max_pixels, None, cut)


def search(
    snapshot: Snapshot, upload: Upload, max_pixels: int, copies: collapse.CopySets | None = None
) -> Found:
    """`upload` searched in `snapshot` (blocking: run it in a worker thread). Refusals are domain
    errors: a filter the metadata cannot apply, an upload that is not a usable image. `copies`:
    the collection's copies groups and pairs apart, for `upload.collapse` (None: not known yet;
    copies of the query are still folded)."""
    allowed = snapshot.allowed(upload.conditions)
    started = time.perf_counter()
    image, box_px = decode_query(upload.data, max_pixels, snapshot, upload.box)
    decode_ms = (time.perf_counter() - started) * 1e3
    taken = partial(capture_time.read, upload.data)
    # the upload decoded again larger, only if a check asks (a detail of a big photo); not a region
    larger = partial(larger_view, upload.data, max_pixels) if upload.box is None else None
    if not upload.collapse:
        return Found(
            image, box_px, decode_ms, snapshot.search(image, upload.k, allowed, upload.offset, taken, larger)
        )
    wanted = upload.offset + upload.k
    hits = snapshot.search(image, collapse.fetched(wanted), allowed, 0, taken, larger)
    return Found(
        image, box_px, decode_ms, collapsed(hits, copies or collapse.CopySets(), upload.k, upload.offset)
    )


def collapsed(hits: Hits, copies: collapse.CopySets, k: int, offset: int) -> Hits:
    """`hits` with one result per set of copies (ranking/collapse.py), results offset to offset + k."""
    checks = hits.checks or [None] * len(hits.hits)
    kept, counts = collapse.collapse(
        [i for i, _ in hits.hits], [bool(c is not None and c.copy) for c in checks], copies
    )
    page = slice(offset, offset + k)
    return dataclasses.replace(
        hits,
        hits=[hits.hits[p] for p in kept][page],
        checks=[checks[p] for p in kept][page],
        copies=counts[page],
    )
