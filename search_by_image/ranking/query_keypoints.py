"""The keypoints of a search's query (an upload, or an indexed image for "more like this" and
duplicates), in the frame of the collection's thumbnails: its own, its mirror image's and, for a
large upload, a finer set from a larger view of it, each made only when a check asks for it.

The finer set is what a small detail of a big photo needs: the detail is matched against the big
photo's own finer keypoints (stored_keypoints.py, 2,000 at 1,024 px), and at the thumbnail's
size a smooth or repetitive detail shows too few corners to match them (bench/README.md "Stored
keypoints": larger query keypoints).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PIL import Image

from search_by_image.catalog.thumbnails import THUMBNAIL_PX
from search_by_image.images.capture_time import CaptureTime
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.ranking import local_features
from search_by_image.ranking.local_features import Keypoints

#: The larger view of an upload its finer keypoints come from (longest side, px), and how many.
LARGER_SIDE = 768
LARGER_KEYPOINTS = 1500
#: An upload whose longest side is under this many px is enlarged to it (`enlarged`) before its
#: keypoints are found and its pixels compared: ORB finds no corner within 31 px of a border and
#: its pyramid only shrinks, so a 150-250 px copy recompressed hard matched its source's 325 px
#: thumbnail with a handful of keypoints (bench/README.md "Small copies enlarged"). Its pixels
#: are compared on the enlarged view too: the query's own grey warped up onto the candidate
#: reads as more motion. 0: never enlarged.
SMALL_SIDE = 320


class Query:
    """The keypoints of one query; its mirror image's, its finer set's and its capture time,
    read only if a pair needs them."""

    def __init__(
        self,
        keypoints: Keypoints,
        mirror: Callable[[], Keypoints | None] | None = None,
        taken: Callable[[], CaptureTime | None] | None = None,
        finer: Callable[[], Keypoints | None] | None = None,
    ):
        self.keypoints = keypoints
        self._made: dict[str, Keypoints | None] = {}
        self._makers = {"mirror": mirror, "finer": finer}
        self._taken = taken
        self._capture: CaptureTime | None = None
        # results are checked side by side: each made once (a lock each: they take ms)
        self._locks = {"mirror": threading.Lock(), "finer": threading.Lock()}
        self._taken_lock = threading.Lock()

    @classmethod
    def of_image(
        cls,
        rgb: np.ndarray,
        taken: Callable[[], CaptureTime | None] | None = None,
        larger: Callable[[], np.ndarray | None] | None = None,
    ) -> Query:
        """An uploaded image as a query, brought to the indexed side's scale first
        (`at_indexed_scale`); `taken`: the photo's capture time, asked for when a result is a
        copy by its pixels; `larger`: what decodes the upload at a larger size (None where it
        has none), for the finer keypoints (`finer_keypoints`)."""
        rgb = enlarged(at_indexed_scale(rgb))
        keypoints = local_features.extract(rgb)
        finer = None if larger is None else lambda: finer_keypoints(larger(), keypoints)
        return cls(keypoints, lambda: local_features.extract(local_features.mirrored(rgb)), taken, finer)

    def taken(self) -> CaptureTime | None:
        with self._taken_lock:
            if self._taken is not None:
                self._capture, self._taken = self._taken(), None
            return self._capture

    def mirrored(self) -> Keypoints | None:
        return self._once("mirror")

    def finer(self) -> Keypoints | None:
        """The finer keypoints of a large upload (None: none), in `keypoints`' frame."""
        return self._once("finer")

    def _once(self, name: str) -> Keypoints | None:
        with self._locks[name]:
            make = self._makers[name]
            if name not in self._made and make is not None:
                self._made[name] = make()
                self._makers[name] = None
            return self._made.get(name)


def at_indexed_scale(rgb: np.ndarray, side: int = THUMBNAIL_PX) -> np.ndarray:
    """An H x W x 3 uint8 image larger than `side` px resized to it as the indexer makes an
    image's thumbnail (Pillow's antialiased bicubic, model/preprocessing.py), the size the
    indexed side's keypoints come from. Resampled by another chain (800 px straight to
    local_features.SIDE) an exact copy's fine textures alias otherwise than its thumbnail's and
    read as 0.2-0.3 px of residual motion, over verification.COPY_MOTION; by the same chain,
    0.03-0.04 px."""
    return _at_side(rgb, side) if max(rgb.shape[:2]) > side else rgb


def enlarged(rgb: np.ndarray, side: int | None = None) -> np.ndarray:
    """An H x W x 3 uint8 image whose longest side is under `side` (SMALL_SIDE) px enlarged to
    it (Pillow's bicubic); any other as it is."""
    side = SMALL_SIDE if side is None else side
    return _at_side(rgb, side) if max(rgb.shape[:2]) < side else rgb


def _at_side(rgb: np.ndarray, side: int) -> np.ndarray:
    """An H x W x 3 uint8 image resized (Pillow's bicubic) to a longest side of `side` px."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    size = max(1, round(width * scale)), max(1, round(height * scale))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def finer_keypoints(rgb: np.ndarray | None, keypoints: Keypoints) -> Keypoints | None:
    """LARGER_KEYPOINTS keypoints of a larger view of the query (H x W x 3 uint8, scaled to
    LARGER_SIDE px) in the frame of its own `keypoints`, with their grey (what its pixels are
    compared at); None without a view, or one no larger than that frame's."""
    height, width = keypoints.grey.shape
    if rgb is None or max(rgb.shape[:2]) <= 1.5 * max(height, width):
        return None
    found = local_features.extract(rgb, LARGER_SIDE, LARGER_KEYPOINTS)
    grey_height, grey_width = found.grey.shape
    # pixel centres map onto pixel centres: (x + 0.5) scales
    scale = np.array([width / grey_width, height / grey_height], np.float32)
    return Keypoints((found.xy + 0.5) * scale - 0.5, found.descriptors, keypoints.grey)


def larger_view(data: bytes, max_pixels: int) -> np.ndarray | None:
    """An upload decoded again at LARGER_SIDE px (JPEG's DCT scaling where it can; None for one
    no larger, or one that can no longer be decoded within the budget)."""

    def size_for(width: int, height: int) -> tuple[int, int]:
        scale = min(1.0, LARGER_SIDE / max(width, height))
        return max(1, round(width * scale)), max(1, round(height * scale))

    try:
        return np.asarray(open_rgb(data, max_pixels, size_for))
    except UnreadableImage:
        return None
