"""The keypoint store brought in line with a committed index at the end of an indexer run: rows
of images no longer indexed removed, and the keypoints of indexed images that have none computed
(a collection indexed before the store existed, images embedded by the Ray engine, rows a crash
lost), with a progress bar. Each from the image's thumbnail (made first where missing) and, for
a big photo, a larger view of it: the same keypoints the indexer's workers compute as they embed
(stored_keypoints.of_image).
"""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from tqdm import tqdm

from search_by_image.catalog.keypoint_store import KeypointStore, StoredKeypoints
from search_by_image.catalog.locations import Location
from search_by_image.catalog.thumbnails import Thumbnails, covering
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.indexing.report import Progress
from search_by_image.ranking import stored_keypoints

log = logging.getLogger(__name__)

#: Images computed between two writes to the store (one transaction each).
BATCH = 64


def fill(
    location: Location,
    files: dict[str, tuple[int, int]],
    max_pixels: int,
    workers: int,
    progress: bool = True,
    status: Progress | None = None,
) -> int:
    """Compute and store the keypoints of the indexed `files` (path -> fingerprint) that have
    none stored, and drop the rows of other paths; how many were computed. `status` follows
    (phase `keypoints`) when there are any to compute."""
    store = KeypointStore(location.saved_dir)
    try:
        store.prune(files)
        missing = store.missing(files)
    except sqlite3.DatabaseError as exc:  # damaged: derived data, made again whole
        log.warning("%s is unreadable (%s): computing every image's keypoints again", store.file, exc)
        store.close()
        for leftover in store.file.parent.glob(store.file.name + "*"):
            leftover.unlink()
        missing = list(files)
    if not missing:
        return 0
    log.info("Computing the local keypoints of %d images that have none stored", len(missing))
    status = status or Progress()
    status.phase, status.total, status.done = "keypoints", len(missing), 0
    thumbnails = Thumbnails(location.saved_dir)

    def computed(path: str) -> tuple[str, tuple[int, int], StoredKeypoints] | None:
        found = _keypoints(location, thumbnails, path, files[path], max_pixels)
        return None if found is None else (path, files[path], found)

    with (
        ThreadPoolExecutor(max(1, workers)) as pool,
        tqdm(total=len(missing), unit="img", desc="Keypoints", disable=not progress) as bar,
    ):
        for start in range(0, len(missing), BATCH):
            part = missing[start : start + BATCH]
            store.put([row for row in pool.map(computed, part) if row is not None])
            bar.update(len(part))
            status.done += len(part)
    store.close()
    return len(missing)


def _keypoints(
    location: Location, thumbnails: Thumbnails, path: str, fingerprint: tuple[int, int], max_pixels: int
) -> StoredKeypoints | None:
    """One image's keypoints, from its thumbnail where it has one; None if it cannot be read."""
    file = location.images_dir / path
    thumbnail = thumbnails.file(path, fingerprint)
    try:
        if not thumbnail.is_file():
            return stored_keypoints.of_image(file, open_rgb(file, max_pixels, covering(None)), max_pixels)
        with Image.open(thumbnail) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnreadableImage, OSError, ValueError):
        return None
    return stored_keypoints.compute(pixels, stored_keypoints.large_view(file, max_pixels))
