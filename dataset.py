"""Reading images: the one decode path shared by the indexer and the upload handler.

Every image goes through `open_rgb`, so a photo is decoded the same way whether it sits in the
collection or arrives as an upload: EXIF orientation applied, any mode turned into 8-bit RGB,
and JPEGs (and HEIC files with a large enough embedded thumbnail) decoded at a reduced scale
(Pillow `draft`) when the model needs fewer pixels. Only the formats of `search_by_image.formats`
are opened; camera raw files go through `search_by_image.camera_raw`. A multi-image file (HEIC
burst, animated WebP/AVIF/GIF, multi-page TIFF) gives its primary image.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from search_by_image import camera_raw, formats

log = logging.getLogger(__name__)

#: The suffixes the indexer scans: the one list of formats (search_by_image/formats.py).
IMAGE_SUFFIXES = formats.SUFFIXES
#: Formats whose Pillow plugin decodes at a reduced size through `draft` (JPEG: DCT scaling;
#: pillow-heif: the smallest embedded thumbnail that is large enough).
DRAFT_FORMATS = frozenset({"JPEG", "MPO", "HEIF"})

# Our own pixel limit (UnreadableImage.too_large) is the guard; Pillow's global one would reject
# large-but-legitimate scans with a different error before ours runs.
Image.MAX_IMAGE_PIXELS = None


class UnreadableImage(ValueError):
    """The bytes are not an image we can use; `reason` is safe to show to a user."""

    def __init__(self, reason: str, kind: str = "corrupt"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "not_image" | "corrupt" | "too_large"


@dataclass(frozen=True)
class Fingerprint:
    """What tells an unchanged file from a changed one without reading it."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns)


def list_images(root: Path) -> dict[str, Fingerprint]:
    """Images under `root` (recursive, hidden entries skipped), as sorted relative POSIX paths."""
    found: dict[str, Fingerprint] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = Fingerprint.of(path)
    return dict(sorted(found.items()))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha flattened onto white, 16/32-bit scaled, not clipped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _stored_target(
    image: Image.Image, target: Callable[[int, int], tuple[int, int]]
) -> tuple[int, int]:
    """`target` is in displayed (EXIF-rotated) coordinates; draft() works on stored ones."""
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
        shown_w, shown_h = target(height, width)
        return shown_h, shown_w
    return target(width, height)


def open_rgb(
    source: Path | bytes,
    max_pixels: int,
    target: Callable[[int, int], tuple[int, int]] | None = None,
) -> Image.Image:
    """Decode a file or bytes into an RGB image, or raise `UnreadableImage` with the reason.

    `target(width, height)` gives the size the caller will resize to; JPEGs are then decoded with
    DCT scaling to the smallest scale at least that big, which is several times faster on photos.
    The pixel limit is checked from the header, before any pixel is decoded (decompression bombs).
    """
    try:
        if formats.camera_raw(source) is not None:
            return _open_camera_raw(source, max_pixels, target)
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(stream, formats=formats.PILLOW_NAMES) as image:
            return _decode(image, max_pixels, target)
    except UnreadableImage:
        raise
    except UnidentifiedImageError as exc:
        raise UnreadableImage(formats.unsupported_reason(source), kind="not_image") from exc
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"image data is truncated or corrupt ({exc})") from exc


def _decode(image: Image.Image, max_pixels: int,
            target: Callable[[int, int], tuple[int, int]] | None) -> Image.Image:
    """An opened (header-only) Pillow image as RGB, within the pixel limit."""
    width, height = image.size
    if width * height > max_pixels:
        raise UnreadableImage(
            f"image is {width}x{height} = {width * height} pixels, "
            f"more than the limit of {max_pixels}",
            kind="too_large",
        )
    if target is not None and image.format in DRAFT_FORMATS:
        image.draft("RGB", _stored_target(image, target))
    image.load()
    # in place, and RGB kept as is: the two copies a 3 MP upload's decode otherwise makes
    # took 40% as long as the decode itself (py-spy of the service)
    ImageOps.exif_transpose(image, in_place=True)
    return _to_rgb(image)


def _open_camera_raw(source: Path | bytes, max_pixels: int,
                     target: Callable[[int, int], tuple[int, int]] | None) -> Image.Image:
    """A camera raw file: its embedded preview (through `open_rgb`, as any JPEG) or a demosaic."""
    try:
        image = camera_raw.decode(source, max_pixels, target,
                                  lambda preview: open_rgb(preview, max_pixels, target))
    except camera_raw.RawError as exc:
        raise UnreadableImage(str(exc), kind=exc.kind) from exc
    return _to_rgb(image)


@dataclass
class Batch:
    """Decoded images of one DataLoader batch; `failed` holds (index, reason) for skipped files."""

    indices: list[int]
    #: `Preprocessing` outputs (uint8 pixels), one per index
    prepared: list[np.ndarray]
    failed: list[tuple[int, str]]


class ImageFolder:
    """Images of a folder by relative path, decoded and preprocessed (a map-style dataset: torch's
    DataLoader workers decode it on a GPU; the CPU path iterates it without torch).

    A file that cannot be decoded yields a failure instead of raising, so one bad file never stops
    a run; `collate` keeps indices next to pixels, so features and paths cannot drift apart.
    """

    def __init__(
        self,
        root: Path,
        paths: list[str],
        preprocess: Callable[[Image.Image], np.ndarray],
        max_pixels: int,
    ):
        self.root = root
        self.paths = paths
        self.preprocess = preprocess
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        target = getattr(self.preprocess, "resized_size", None)
        try:
            image = open_rgb(self.root / self.paths[index], self.max_pixels, target)
        except (UnreadableImage, OSError) as exc:
            return index, None, str(exc)
        return index, self.preprocess(image), ""

    @staticmethod
    def collate(samples: list[tuple[int, np.ndarray | None, str]]) -> Batch:
        good = [(index, prepared) for index, prepared, _ in samples if prepared is not None]
        return Batch(
            indices=[index for index, _ in good],
            prepared=[prepared for _, prepared in good],
            failed=[(index, reason) for index, prepared, reason in samples if prepared is None],
        )
