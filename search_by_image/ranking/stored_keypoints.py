"""An indexed image's keypoints computed once, when it is indexed or added, for the collection's
keypoint store (catalog/keypoint_store.py), and read back for verification.

Two sets per image, both in the frame verification compares pixels in (the thumbnail's grey at
local_features.SIDE, what `alignment.py` warps):

- the thumbnail's: `local_features.extract` of the thumbnail JPEG's own pixels, the very
  keypoints a search would otherwise extract from the thumbnail file (KEYPOINTS at SIDE px);
- for a photo whose longer side is at least LARGE_MIN_SIDE, a finer set from a LARGE_SIDE px view
  of it (LARGE_KEYPOINTS), its positions scaled into the same frame: a small detail cut from a big
  photo shows a handful of the thumbnail's keypoints, and many of these (bench/README.md "Stored
  keypoints"). A search tries it where the thumbnail's set finds no copy (verification.check).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.catalog.keypoint_store import PointSet, StoredKeypoints
from search_by_image.catalog.thumbnails import THUMBNAIL_PX, encode
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.ranking import local_features
from search_by_image.ranking.local_features import Keypoints

#: The larger view's longest side and keypoints (bench/README.md "Stored keypoints": details
#: verified against bytes per image).
LARGE_SIDE = 1024
LARGE_KEYPOINTS = 2000
#: Photos at least this large (longer side, px) get the finer set; a smaller one's thumbnail
#: already shows most of what it has.
LARGE_MIN_SIDE = 2 * THUMBNAIL_PX


def wants_large(size: tuple[int, int]) -> bool:
    """Whether a photo of this (width, height) gets the finer set."""
    return max(size) >= LARGE_MIN_SIDE


def large_size(width: int, height: int) -> tuple[int, int]:
    """The decode size of the larger view (for `decoding.open_rgb`'s `size_for`)."""
    scale = min(1.0, LARGE_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail_pixels(image: Image.Image) -> np.ndarray:
    """The pixels of the thumbnail made of `image` (catalog/thumbnails.py: resized, JPEG encoded),
    decoded: what verification would otherwise read from the thumbnail's file."""
    with Image.open(io.BytesIO(encode(image))) as thumbnail:
        return np.asarray(thumbnail.convert("RGB"))


def compute(thumbnail_rgb: np.ndarray, large_rgb: np.ndarray | None = None) -> StoredKeypoints:
    """An image's keypoints for storage: its thumbnail's (H x W x 3 uint8 pixels) and, given a
    larger view of it, the finer set in the thumbnail set's frame."""
    thumb = local_features.extract(thumbnail_rgb)
    height, width = thumb.grey.shape
    large = None
    if large_rgb is not None:
        found = local_features.extract(large_rgb, LARGE_SIDE, LARGE_KEYPOINTS)
        grey_height, grey_width = found.grey.shape
        # pixel centres map onto pixel centres: (x + 0.5) scales
        scale = np.array([width / grey_width, height / grey_height], np.float32)
        large = PointSet((found.xy + 0.5) * scale - 0.5, found.descriptors)
    return StoredKeypoints((width, height), PointSet(thumb.xy, thumb.descriptors), large)


def of_image(source: Path | bytes, thumbnail: Image.Image, max_pixels: int) -> StoredKeypoints:
    """An image's keypoints for the keypoint store: its thumbnail's (made of `thumbnail`, as the
    thumbnail file is), and for a big photo a larger view's (`large_view`) of its file or bytes."""
    return compute(thumbnail_pixels(thumbnail), large_view(source, max_pixels))


def large_view(source: Path | bytes, max_pixels: int) -> np.ndarray | None:
    """A big photo decoded again at the finer keypoints' size; None for a smaller one, or one
    Pillow alone cannot open (a camera raw file)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as header:
            size = header.size
        if wants_large(size):
            return np.asarray(open_rgb(source, max_pixels, large_size))
    except (UnreadableImage, OSError, ValueError):
        pass
    return None


def keypoints(
    stored: StoredKeypoints,
    grey: Callable[[], np.ndarray],
    large: Callable[[], PointSet | None] | None = None,
    view: Callable[[], np.ndarray] | None = None,
) -> Keypoints:
    """Stored keypoints as verification's, their grey image read by `grey` when a pair aligns
    (resized to the stored frame should it differ); the finer set from `stored`, or where it was
    not read with it, from `large` when a check asks for it, compared at the larger view `view`
    reads (its grey at LARGE_SIDE: `view_grey`), or at the thumbnail without one."""
    width, height = stored.frame

    def framed() -> np.ndarray:
        pixels = grey()
        if pixels.shape != (height, width):
            pixels = local_features.opencv().resize(pixels, stored.frame)
        return pixels

    def scaled() -> tuple[np.ndarray, tuple[float, float]]:
        pixels = view()  # type: ignore[misc]
        return pixels, (pixels.shape[1] / width, pixels.shape[0] / height)

    def finer() -> Keypoints | None:
        points = stored.large if stored.large is not None else large() if large is not None else None
        if points is None or not len(points.xy):
            return None
        # the view decoded once per check (its matches at each ratio may each compare pixels)
        return Keypoints(points.xy, points.descriptors, framed, view=None if view is None else cache(scaled))

    has_finer = stored.large is not None or (stored.has_large and large is not None)
    return Keypoints(stored.thumb.xy, stored.thumb.descriptors, framed, finer if has_finer else None)


def view_grey(source: Path | bytes, max_pixels: int) -> np.ndarray:
    """The grey of a big photo's larger view, as its finer keypoints were found on (OSError if
    it can no longer be read)."""
    rgb = large_view(source, max_pixels)
    if rgb is None:
        raise OSError("the photo's larger view cannot be read")
    return local_features.scaled_grey(rgb, LARGE_SIDE)
