"""Decoding images: the one decode path shared by the indexer and the upload handler.

Every image goes through `open_rgb`, so a photo is decoded the same way whether it sits in the
collection or arrives as an upload: EXIF orientation applied, any mode turned into 8-bit RGB,
and no bigger than the model needs. JPEGs are decoded at a reduced scale (Pillow `draft`, DCT
scaling), HEIC files from an embedded thumbnail when one is large enough (pillow-heif's `draft`);
Pillow has no reduced decoding for PNG, WebP, TIFF or GIF, so those are shrunk by an integer
factor (`Image.reduce`, a box filter) right after decoding, before any conversion.

Only the formats of `search_by_image.images.formats` are opened; camera raw files go through
`search_by_image.images.camera_raw` (their preview back through `open_rgb`, a demosaic inside the same
budget). A multi-image file (HEIC burst, animated WebP/AVIF/GIF, multi-page TIFF) gives its
primary image.

Memory is set by decoded pixels, not by file size: a lossless WebP of a few dozen bytes can declare
7000x7000 and decode to most of a gigabyte (bench/README.md, "Figures behind the code's choices").
So every decode first takes its estimated cost from one process-wide
`decode_budget` (a semaphore weighted by bytes), and waits, or gives up with a "busy" error, when
decodes in flight already hold it all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from search_by_image.images import camera_raw, formats

log = logging.getLogger(__name__)

#: Formats whose Pillow plugin decodes at a reduced size through `draft` (JPEG: DCT scaling;
#: pillow-heif: the smallest embedded thumbnail that is large enough).
DRAFT_FORMATS = frozenset({"JPEG", "MPO", "HEIF"})

# Our own pixel limit (UnreadableImage.too_large) is the guard; Pillow's global one would reject
# large-but-legitimate scans with a different error before ours runs.
Image.MAX_IMAGE_PIXELS = None


#: Peak bytes per decoded pixel, measured with Pillow 13 on 7000x7000 images: WebP goes through
#: libwebp's two RGBA canvases and a bytes copy of the frame; PNG with alpha through Pillow's
#: decoder buffers; 16-bit and float modes are converted a strip at a time; everything else is
#: Pillow's 4-byte pixels plus the reduced copy.
DECODE_BYTES_PER_PIXEL = {"WEBP": 12, "PNG": 10}
DEFAULT_DECODE_BYTES_PER_PIXEL = 6
#: ... plus the full-size RGB result, when the caller needs the whole image (no size_for).
FULL_SIZE_BYTES_PER_PIXEL = 4
#: Rows of a 16-bit or float image converted at a time (bounded memory whatever its size).
STRIP_ROWS = 256
#: How long a decode waits for the budget before the caller is told to retry.
BUDGET_WAIT_S = 60.0


class UnreadableImage(ValueError):
    """The bytes are not an image we can use; `reason` is safe to show to a user."""

    def __init__(self, reason: str, kind: str = "corrupt"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "not_image" | "corrupt" | "too_large" | "busy"


class MemoryBudget:
    """Bytes that the decodes in flight may hold at once: a semaphore weighted by cost.

    A decode costing more than the whole budget is charged the whole budget (it runs alone
    rather than never). `capacity` may be changed at any time (the service sets it from
    SBI_DECODE_MEMORY_MB at startup).
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, cost: int, wait: float = BUDGET_WAIT_S) -> Iterator[None]:
        cost = max(0, min(cost, self.capacity))
        with self._changed:
            if not self._changed.wait_for(lambda: self._used + cost <= self.capacity, timeout=wait):
                raise UnreadableImage(
                    "the server is decoding other large images; retry in a few seconds", kind="busy"
                )
            self._used += cost
        try:
            yield
        finally:
            with self._changed:
                self._used -= cost
                self._changed.notify_all()

    @property
    def in_use(self) -> int:
        return self._used


#: The process' one decode budget (512 MiB unless the service configures it).
decode_budget = MemoryBudget(512 * 2**20)


HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )


def _high_depth_to_gray(image: Image.Image) -> Image.Image:
    """A 16/32-bit or float image as 8-bit gray, scaled (not clipped), a strip of rows at a time:
    the whole of a 7000x7000 16-bit PNG as float64 is over a gigabyte (bench/README.md, "Figures
    behind the code's choices")."""
    low, high = cast(tuple[float, float], image.getextrema())  # one band
    peak = 65535.0 if high > 255 else 255.0
    gray = Image.new("L", image.size)
    for top in range(0, image.height, STRIP_ROWS):
        strip = image.crop((0, top, image.width, min(top + STRIP_ROWS, image.height)))
        values = np.asarray(strip, dtype=np.float32)
        gray.paste(Image.fromarray(np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)), (0, top))
    gray.info = image.info.copy()  # EXIF orientation included
    return gray


def _loaded(image: Image.Image) -> Image.Image:
    """`image` decoded. A still WebP is taken straight from libwebp's frame, wrapped without a
    copy, and its decoder (two canvases) dropped: Pillow's own load keeps both canvases and copies
    the frame twice, 16 bytes per pixel at its peak instead of 12 (measured at 49 MP: bench/README.md,
    "Figures behind the code's choices")."""
    decoder = getattr(image, "_decoder", None)
    if image.format != "WEBP" or decoder is None or getattr(image, "n_frames", 1) != 1:
        image.load()
        return image
    ready = decoder.get_next()
    if ready is None:
        raise UnreadableImage("WebP frame data is truncated or corrupt")
    mode = "RGBA" if image.mode == "RGBA" else "RGBX"
    frame = Image.frombuffer(mode, image.size, ready[0], "raw", image.rawmode, 0, 1)  # type: ignore[attr-defined]
    frame.info = image.info.copy()
    image._decoder = None  # type: ignore[attr-defined]  # WebPImageFile's, as read above
    return frame


def reduced(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    """Shrunk by the largest integer factor that keeps it at least `size` (stored coordinates)."""
    if size is None:
        return image
    factor = min(image.width // max(1, size[0]), image.height // max(1, size[1]))
    if factor < 2:
        return image
    if image.mode not in ("L", "RGB", "RGBA", "I", "F", "LA", "La", "RGBa", "RGBX"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    return image.reduce(factor)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha flattened onto white, 16/32-bit scaled, not clipped."""
    if image.mode in HIGH_DEPTH_MODES:
        return _high_depth_to_gray(image).convert("RGB")
    if _has_alpha(image):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))  # 2 copies, not alpha_composite's 4
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


def _stored_size(image: Image.Image, size_for: Callable[[int, int], tuple[int, int]]) -> tuple[int, int]:
    """`size_for` is in displayed (EXIF-rotated) coordinates; draft() works on stored ones."""
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
        shown_w, shown_h = size_for(height, width)
        return shown_h, shown_w
    return size_for(width, height)


class _FinishFailed(Exception):
    """Carries the caller's own error out of the decode's handlers, unchanged."""

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def check_pixels(image: Image.Image, max_pixels: int) -> None:
    """`UnreadableImage` (too_large) when the header declares more than `max_pixels`."""
    width, height = image.size
    if width * height > max_pixels:
        raise UnreadableImage(
            f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}",
            kind="too_large",
        )


def decode_cost(image: Image.Image, full_size: bool) -> int:
    """Estimated peak bytes of decoding `image` at its current (possibly drafted) size."""
    per_pixel = DECODE_BYTES_PER_PIXEL.get(image.format or "", DEFAULT_DECODE_BYTES_PER_PIXEL)
    return image.width * image.height * (per_pixel + FULL_SIZE_BYTES_PER_PIXEL * full_size)


def open_rgb(
    source: Path | bytes,
    max_pixels: int,
    size_for: Callable[[int, int], tuple[int, int]] | None = None,
    finish: Callable[[Image.Image], Any] | None = None,
) -> Any:
    """Decode a file or bytes into an RGB image, or raise `UnreadableImage` with the reason.

    `size_for(width, height)` gives the size the caller will resize to; the image comes back at the
    smallest size at least that big that the format reaches cheaply (JPEG DCT scaling, else an
    integer `reduce` right after decoding), which is several times faster on photos and bounds
    what the caller holds. The pixel limit is checked from the header, before any pixel is
    decoded (decompression bombs); the decode itself runs inside `decode_budget`, and so does
    `finish(image)` when given (e.g. a crop of the full-size image): its result is returned.
    """
    try:
        if formats.camera_raw(source) is not None:
            return _finished(_open_camera_raw(source, max_pixels, size_for), finish)
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(stream, formats=formats.PILLOW_NAMES) as image:
            return _decode(image, max_pixels, size_for, finish)
    except _FinishFailed as failed:
        raise failed.error from None
    except UnreadableImage:
        raise
    except UnidentifiedImageError as exc:
        raise UnreadableImage(formats.unsupported_reason(source), kind="not_image") from exc
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"image data is truncated or corrupt ({exc})") from exc


def _decode(
    image: Image.Image,
    max_pixels: int,
    size_for: Callable[[int, int], tuple[int, int]] | None,
    finish: Callable[[Image.Image], Any] | None = None,
) -> Any:
    """An opened (header-only) Pillow image as RGB, within the pixel limit and the decode budget."""
    check_pixels(image, max_pixels)
    if size_for is not None and image.format in DRAFT_FORMATS:
        image.draft("RGB", _stored_size(image, size_for))
    with decode_budget.hold(decode_cost(image, full_size=size_for is None)):
        image = _loaded(image)
        # after load(): a PNG's getexif() decodes the whole image to find its eXIf chunk
        stored = _stored_size(image, size_for) if size_for is not None else None
        image = reduced(_high_depth_to_gray(image) if image.mode in HIGH_DEPTH_MODES else image, stored)
        # in place, and RGB kept as is: the two copies a 3 MP upload's decode otherwise makes
        # took 40% as long as the decode itself (py-spy of the service)
        ImageOps.exif_transpose(image, in_place=True)
        return _finished(_to_rgb(image), finish)


def _finished(rgb: Image.Image, finish: Callable[[Image.Image], Any] | None) -> Any:
    if finish is None:
        return rgb
    try:
        return finish(rgb)
    except Exception as exc:  # the caller's own error, not a decoding problem
        raise _FinishFailed(exc) from exc


def _open_camera_raw(
    source: Path | bytes, max_pixels: int, size_for: Callable[[int, int], tuple[int, int]] | None
) -> Image.Image:
    """A camera raw file: its embedded preview (through `open_rgb`, as any JPEG) or a demosaic."""
    try:
        image = camera_raw.decode(
            source,
            max_pixels,
            size_for,
            lambda preview: open_rgb(preview, max_pixels, size_for),
            decode_budget.hold,
        )
    except camera_raw.RawError as exc:
        raise UnreadableImage(str(exc), kind=exc.kind) from exc
    return _to_rgb(image)
