"""Camera raw files (DNG, CR2/CR3, NEF, ARW, ORF, RW2, ...) as a Pillow image, through rawpy.

A camera stores a JPEG preview beside the sensor data, rendered with the camera's own colours;
when it is at least as large as the caller needs, it is used (decoded by `decode_jpeg`, the same
path as any JPEG: pixel limit and DCT scaling included). Otherwise the sensor data is demosaiced
by LibRaw, at half size (each 2x2 Bayer cell as one pixel, 4x less work and memory) whenever
that is still large enough. The pixel limit is checked from the header before either, on the
displayed size and on the whole sensor (what LibRaw unpacks, whatever area the file says it
shows), and the demosaic holds its estimated memory from the caller's decode budget (decoding.decode_budget).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import ExifTags, Image

from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import rawpy
else:
    rawpy = LazyModule("rawpy")  # at the first raw file: 0.1-0.35 s of every start otherwise

#: The longest side asked of the preview when the caller gives no target size (a region search
#: decodes at full size and crops): big enough to crop from, and what cameras embed (>= 1600 px).
FULL_SIZE_PREVIEW = 1600
#: LibRaw's memory per sensor pixel: the unpacked raw data (16-bit), and per output pixel its
#: 4 x 16-bit working image plus the 8-bit RGB result
RAW_BYTES_PER_PIXEL, WORKING_BYTES_PER_PIXEL = 2, 8 + 3
#: LibRaw's `flip` (how the sensor image is turned for display) as Pillow transposes
_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}

Target = Callable[[int, int], tuple[int, int]]


class RawError(ValueError):
    """`kind` as in decoding.UnreadableImage: not_image (LibRaw does not know it), corrupt, too_large."""

    def __init__(self, reason: str, kind: str):
        super().__init__(reason)
        self.kind = kind


def decode(
    source: Path | bytes,
    max_pixels: int,
    target: Target | None,
    decode_jpeg: Callable[[bytes], Image.Image],
    budget: Callable[[int], AbstractContextManager] = lambda cost: nullcontext(),
) -> Image.Image:
    """The displayed image (orientation applied) of a camera raw file; raises RawError.

    `decode_jpeg` decodes the preview; `budget(bytes)` is held around the demosaic."""
    try:
        with rawpy.imread(str(source) if isinstance(source, Path) else io.BytesIO(source)) as raw:
            sizes = raw.sizes
            width, height = sizes.width, sizes.height
            # LibRaw unpacks the whole sensor, whatever active area or crop the file claims
            for what, w, h in (("image", width, height), ("sensor", sizes.raw_width, sizes.raw_height)):
                if w * h > max_pixels:
                    raise RawError(
                        f"{what} is {w}x{h} = {w * h} pixels, more than the limit of {max_pixels}",
                        "too_large",
                    )
            if sizes.flip in (5, 6):
                width, height = height, width
            needed = max(target(width, height)) if target else min(max(width, height), FULL_SIZE_PREVIEW)
            preview = _preview(raw, needed, decode_jpeg)
            if preview is not None:
                return preview
            half = max(width, height) // 2 >= needed
            sensor = sizes.raw_width * sizes.raw_height
            cost = sensor * RAW_BYTES_PER_PIXEL + width * height * WORKING_BYTES_PER_PIXEL // (
                4 if half else 1
            )
            with budget(cost):
                pixels = raw.postprocess(use_camera_wb=True, half_size=half, output_bps=8)
                return Image.fromarray(np.ascontiguousarray(pixels))
    except RawError:
        raise
    except (rawpy.LibRawFileUnsupportedError, rawpy.NotSupportedError) as exc:
        raise RawError(f"not a camera raw file LibRaw reads ({exc})", "not_image") from exc
    except (rawpy.LibRawError, OSError) as exc:  # the caller's own errors (budget, preview) pass
        raise RawError(f"camera raw data is truncated or corrupt ({exc})", "corrupt") from exc


def _preview(
    raw: rawpy.RawPy, needed: int, decode_jpeg: Callable[[bytes], Image.Image]
) -> Image.Image | None:
    """The embedded preview if its longest side is at least `needed`, turned for display."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        jpeg = cast(bytes, thumb.data)  # rawpy: bytes for a JPEG preview, an array for a bitmap
        with Image.open(io.BytesIO(jpeg), formats=("JPEG",)) as probe:
            size = probe.size
            oriented = probe.getexif().get(ExifTags.Base.Orientation, 1) != 1
        if max(size) < needed:
            return None
        image = decode_jpeg(jpeg)  # applies the preview's own EXIF orientation, if any
    else:
        bitmap = cast(np.ndarray, thumb.data)
        if max(bitmap.shape[:2]) < needed:
            return None
        image, oriented = Image.fromarray(np.ascontiguousarray(bitmap)).convert("RGB"), False
    flip = _FLIP.get(raw.sizes.flip)
    return image.transpose(flip) if flip is not None and not oriented else image
