"""Where an indexed image's keypoints come from: the collection's keypoint store (computed once
when the image was indexed or added: catalog/keypoint_store.py, stored_keypoints.py), else its
448 px thumbnail (made first where missing, as GET /thumbnails would), extracted now. Either way
in the thumbnail's frame, their grey pixels read from the thumbnail only when a pair aligns.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.catalog.keypoint_store import KeypointStore, PointSet
from search_by_image.catalog.locations import Location
from search_by_image.catalog.thumbnails import Thumbnails, covering
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.ranking import local_features, stored_keypoints
from search_by_image.ranking.local_features import Keypoints
from search_by_image.ranking.verification import UNREADABLE

Fingerprint = tuple[int, int]
#: Grey images kept once read (~150 KB each): a duplicates pass checks an image's pairs one
#: after another, so the thumbnail is decoded once for them, not once per pair that aligns.
CACHED_GREYS = 64
#: Greys kept while a duplicates pass runs (`Verifier.holding`: ~150 MB): it checks the best
#: scoring pairs of a run of them first (pair_checks.BEST_FIRST_LINKS), not one image's at a time,
#: and a run of 1,024 pairs holds up to 2,048 images (a 5.4k collection's pass: 15% fewer
#: decoded than with 256).
PASS_GREYS = 1024
log = logging.getLogger(__name__)


class IndexedKeypoints:
    """One collection's images' keypoints, by path and fingerprint (see the module docstring)."""

    def __init__(self, location: Location, max_image_pixels: int):
        self.location = location
        self.max_image_pixels = max_image_pixels
        self.thumbnails = Thumbnails(location.saved_dir)
        self.store = KeypointStore(location.saved_dir)
        self._greys: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._greys_lock = threading.Lock()
        self.greys_kept = CACHED_GREYS

    def key(self, path: str, fingerprint: Fingerprint, mirror: bool = False) -> Path:
        """What names an image's keypoints in a cache: its thumbnail's file (changes with the image)."""
        thumbnail = self.thumbnails.file(path, fingerprint)
        return thumbnail.with_name(thumbnail.name + ".mirror") if mirror else thumbnail

    def stored(self, images: Sequence[tuple[str, Fingerprint]]) -> list[Keypoints | None]:
        """The stored keypoints of each (path, fingerprint), their pixels left to the thumbnail;
        None where none is stored for that file."""
        try:
            rows = self.store.read(images, large=False)
        except sqlite3.Error as exc:  # unreadable (locked, damaged): extracted as without it
            log.warning("Stored keypoints unreadable (%s): extracted from thumbnails", exc)
            rows = [None] * len(images)
        return [
            None if found is None else stored_keypoints.keypoints(found, *self._readers(path, fingerprint))
            for (path, fingerprint), found in zip(images, rows)
        ]

    def put(self, images: Sequence[tuple[str, Fingerprint, Path | bytes, Image.Image]]) -> None:
        """Compute and store the keypoints of added images: (path, fingerprint, the file or its
        bytes, the decoded image their thumbnail is made of). A store that cannot be written
        (disk full, read-only) fails nothing: those images' keypoints are extracted when used."""
        rows = [
            (p, f, stored_keypoints.of_image(source, image, self.max_image_pixels))
            for p, f, source, image in images
        ]
        try:
            self.store.put(rows)
        except sqlite3.Error as exc:
            log.warning("Keypoints of %d added images not stored (%s): extracted when used", len(rows), exc)

    def extracted(self, path: str, fingerprint: Fingerprint, mirror: bool = False) -> Keypoints | None:
        """Keypoints extracted now from the image's thumbnail (of its mirror image if `mirror`),
        with their grey; None if the thumbnail cannot be read or made. The image's own from its
        RGB, as the indexer stores them (the same checks either way); the mirror's, never stored,
        from its luma (`_pixels`)."""
        thumbnail = self.thumbnail(path, fingerprint)
        if thumbnail is None:
            return None
        try:
            pixels = _pixels(thumbnail, mirror)
        except UNREADABLE:
            return None
        return local_features.extract(pixels)

    def grey(self, path: str, fingerprint: Fingerprint, mirror: bool = False) -> np.ndarray:
        """The thumbnail's grey as `local_features.extract` makes it (UNREADABLE if it is gone
        and cannot be made again); the last `greys_kept` read are kept."""
        key = self.key(path, fingerprint, mirror)
        with self._greys_lock:
            if key in self._greys:
                self._greys.move_to_end(key)
                return self._greys[key]
        thumbnail = self.thumbnail(path, fingerprint)
        if thumbnail is None:
            raise OSError(f"no thumbnail of {path} can be read or made")
        grey = _grey(thumbnail, mirror)
        with self._greys_lock:
            self._greys[key] = grey
            self._trim_greys()
        return grey

    def keep_greys(self, count: int) -> None:
        """At most `count` greys kept from now on, the oldest dropped."""
        with self._greys_lock:
            self.greys_kept = count
            self._trim_greys()

    def _trim_greys(self) -> None:
        """The oldest greys past `greys_kept` dropped (the caller holds `_greys_lock`)."""
        while len(self._greys) > self.greys_kept:
            self._greys.popitem(last=False)

    def _readers(self, path: str, fingerprint: Fingerprint):
        """What reads an image's grey pixels, its finer keypoints and its larger view, when a check
        needs them: a cache of keypoints holds the thumbnail's set only (~18 KB, not ~90 KB)."""
        return (
            lambda: self.grey(path, fingerprint),
            lambda: self._large(path, fingerprint),
            lambda: self._view(path, fingerprint),
        )

    def _large(self, path: str, fingerprint: Fingerprint) -> PointSet | None:
        try:
            return self.store.read_large(path, fingerprint)
        except sqlite3.Error:
            return None

    def _view(self, path: str, fingerprint: Fingerprint) -> np.ndarray:
        """A big photo's larger view, decoded again from the very file the indexer read (its
        fingerprint unchanged: OSError otherwise), for the few pairs whose finer keypoints align
        (stored_keypoints.view_grey)."""
        file = self.location.images_dir / path
        found = file.stat()
        if (found.st_size, found.st_mtime_ns) != tuple(fingerprint):
            raise OSError(f"{path} changed since it was indexed")
        return stored_keypoints.view_grey(file, self.max_image_pixels)

    def thumbnail(self, path: str, fingerprint: Fingerprint) -> Path | None:
        """The image's thumbnail file, made now if it has none; None if it cannot be."""
        thumbnail = self.thumbnails.file(path, fingerprint)
        if thumbnail.is_file():
            return thumbnail
        file = self.location.served_file(path)
        if file is None:
            return None
        try:
            image = open_rgb(file, self.max_image_pixels, covering(None))
            return self.thumbnails.write(path, fingerprint, image)
        except (UnreadableImage, OSError):
            return None


def _grey(thumbnail: Path, mirror: bool = False) -> np.ndarray:
    """The thumbnail's grey at local_features.SIDE px, as its keypoints are extracted from."""
    return local_features.scaled_grey(_pixels(thumbnail, mirror))


def _pixels(thumbnail: Path, mirror: bool) -> np.ndarray:
    """What an image's keypoints and grey are made from: its thumbnail's RGB (as the indexer
    stores them), or for its mirror the thumbnail's luma mirrored (`_luma`: a pass extracts most
    images' mirrors)."""
    return local_features.mirrored(_luma(thumbnail)) if mirror else _rgb(thumbnail)


def _luma(thumbnail: Path) -> np.ndarray:
    """The thumbnail decoded as grey: a JPEG's luma alone, no chroma upsampled and converted
    (2.5x less than its RGB: a pass extracts most images' mirrors); within a grey level of
    `scaled_grey` of its RGB but where a saturated colour was clipped. Only for the mirror: the
    image's own grey stays its RGB's, as its stored keypoints were found on (read as luma, one
    borderline pair of the 17,899 a 5.4k pass checks, two shots of a scene, passed for a copy)."""
    with Image.open(thumbnail) as image:
        image.draft("L", image.size)
        return np.asarray(image.convert("L"))


def _rgb(thumbnail: Path) -> np.ndarray:
    with Image.open(thumbnail) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
