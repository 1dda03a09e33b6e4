"""The image formats the service reads: one list, shared by everything that needs to know.

The decoder (`decoding.open_rgb`) opens only these, the indexer's folder scan looks for their
suffixes, an image added through the API is stored under its format's first suffix (so the next
indexer run scans it and never drops it), and the page's file picker and drop zone accept them.
Anything else is refused with an error that names what it is (`unsupported_reason`).

Phone formats come from plugins: HEIC/HEIF from pillow-heif, AVIF from Pillow itself (11.2+) or
pillow-avif-plugin on an older Pillow. Camera raw files are read with rawpy (LibRaw), see
`camera_raw.py`. A format whose library is missing on this install is left out of the list.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, TiffImagePlugin, UnidentifiedImageError, features

HEAD_BYTES = 64


@dataclass(frozen=True)
class ImageFormat:
    #: what users read in errors and on the page, and what `Upload.format` holds
    name: str
    #: file suffixes, lower case; the first names an image added through the API
    suffixes: tuple[str, ...]
    mime: tuple[str, ...]
    #: Pillow's format names for it; empty for camera raw files (rawpy reads those)
    pillow: tuple[str, ...] = ()

    @property
    def raw(self) -> bool:
        return not self.pillow


def _heif_available() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _avif_available() -> bool:
    if features.check("avif"):  # Pillow's own plugin (11.2 and later, when built with libavif)
        return True
    try:
        import pillow_avif  # noqa: F401 - registers the plugin
    except ImportError:
        return False
    return True


def _raw_available() -> bool:
    """Found without importing rawpy (camera_raw.py imports it at the first raw file)."""
    return importlib.util.find_spec("rawpy") is not None


_COMMON = (
    ImageFormat("JPEG", (".jpg", ".jpeg", ".jpe", ".jfif"), ("image/jpeg",), ("JPEG",)),
    ImageFormat("PNG", (".png",), ("image/png",), ("PNG",)),
    ImageFormat("WebP", (".webp",), ("image/webp",), ("WEBP",)),
    ImageFormat("GIF", (".gif",), ("image/gif",), ("GIF",)),
    ImageFormat("BMP", (".bmp", ".dib"), ("image/bmp",), ("BMP", "DIB")),
    ImageFormat("TIFF", (".tif", ".tiff"), ("image/tiff",), ("TIFF",)),
    ImageFormat(
        "PPM",
        (".ppm", ".pgm", ".pbm", ".pnm"),
        (
            "image/x-portable-pixmap",
            "image/x-portable-graymap",
            "image/x-portable-bitmap",
            "image/x-portable-anymap",
        ),
        ("PPM",),
    ),
    ImageFormat("ICO", (".ico",), ("image/x-icon", "image/vnd.microsoft.icon"), ("ICO",)),
)
_HEIF = ImageFormat(
    "HEIC",
    (".heic", ".heif", ".hif"),
    ("image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"),
    ("HEIF",),
)
_AVIF = ImageFormat("AVIF", (".avif",), ("image/avif",), ("AVIF",))
#: Camera raw files, by maker. The ones LibRaw reads that photographers' cameras write most.
RAW_FORMATS = (
    ImageFormat("DNG", (".dng",), ("image/x-adobe-dng", "image/dng")),
    ImageFormat("CR2", (".cr2",), ("image/x-canon-cr2",)),
    ImageFormat("CR3", (".cr3",), ("image/x-canon-cr3",)),
    ImageFormat("NEF", (".nef", ".nrw"), ("image/x-nikon-nef",)),
    ImageFormat("ARW", (".arw", ".srf", ".sr2"), ("image/x-sony-arw",)),
    ImageFormat("ORF", (".orf",), ("image/x-olympus-orf",)),
    ImageFormat("RW2", (".rw2",), ("image/x-panasonic-rw2",)),
    ImageFormat("RAF", (".raf",), ("image/x-fuji-raf",)),
    ImageFormat("PEF", (".pef",), ("image/x-pentax-pef",)),
)

#: Every format this install reads, in the order users see them.
FORMATS: tuple[ImageFormat, ...] = (
    _COMMON
    + ((_HEIF,) if _heif_available() else ())
    + ((_AVIF,) if _avif_available() else ())
    + (RAW_FORMATS if _raw_available() else ())
)
#: Suffixes the indexer scans (lower case, with the dot).
SUFFIXES = frozenset(suffix for f in FORMATS for suffix in f.suffixes)
#: Pillow plugins `Image.open` may use: no other parser ever sees an upload.
PILLOW_NAMES = tuple(name for f in FORMATS for name in f.pillow)
#: ... and the names their images carry: a multi-picture JPEG (MPO) comes from the JPEG plugin
_BY_PILLOW = {name: f for f in FORMATS for name in f.pillow} | {"MPO": _COMMON[0]}
_BY_NAME = {f.name: f for f in FORMATS}
#: TIFF tag numbers that mark a camera raw file built on TIFF (DNG, NEF, ARW, PEF)
DNG_VERSION, SUB_IFDS, MAKE = 50706, 330, 271
#: makers whose raw files are TIFF inside, by the first word of the Make tag
_RAW_BY_MAKE = {"NIKON": "NEF", "SONY": "ARW", "PENTAX": "PEF", "RICOH": "PEF", "CANON": "CR2"}


def by_pillow(name: str | None) -> ImageFormat | None:
    return _BY_PILLOW.get(name or "")


def stored_suffix(name: str) -> str:
    """The suffix an added image of format `name` is stored under (always one the indexer scans)."""
    return _BY_NAME[name].suffixes[0]


def described() -> str:
    """The list for people: 'JPEG, PNG, ..., camera raw (DNG, CR2, ...)'."""
    common = [f.name for f in FORMATS if not f.raw]
    raw = [f.name for f in FORMATS if f.raw]
    return ", ".join(common + ([f"camera raw ({', '.join(raw)})"] if raw else []))


def accept_attribute() -> str:
    """The file picker's `accept`: suffixes and MIME types (image/* alone hides .heic and .dng)."""
    return ",".join([s for f in FORMATS for s in f.suffixes] + [m for f in FORMATS for m in f.mime])


def head(source: Path | bytes, size: int = HEAD_BYTES) -> bytes:
    if isinstance(source, bytes):
        return source[:size]
    with open(source, "rb") as file:
        return file.read(size)


def camera_raw(source: Path | bytes) -> ImageFormat | None:
    """The camera raw format of bytes or a file, from its header; None for anything else.

    Most raw files are TIFF inside (DNG, NEF, ARW, PEF, CR2), with a preview or a mosaic as their
    first directory, which Pillow would misread: they are told apart by their tags.
    """
    start = head(source)
    name: str | None
    if start[4:12] == b"ftypcrx ":
        name = "CR3"
    elif start[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        name = "ORF"
    elif start[:4] == b"IIU\x00":
        name = "RW2"
    elif start.startswith(b"FUJIFILMCCD-RAW"):
        name = "RAF"
    elif start[:4] == b"II*\x00" and start[8:10] == b"CR":
        name = "CR2"
    elif start[:4] in (b"II*\x00", b"MM\x00*"):
        name = _raw_in_tiff(source, start)
    else:
        name = None
    return _BY_NAME.get(name) if name else None


def _raw_in_tiff(source: Path | bytes, start: bytes) -> str | None:
    """DNG by its DNGVersion tag; other makers' raw files by sub-directories + the Make tag."""
    try:
        tags = TiffImagePlugin.ImageFileDirectory_v2(start[:8])
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as file:
            file.seek(tags.next)
            tags.load(file)
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        return None
    if DNG_VERSION in tags:
        return "DNG"
    if SUB_IFDS in tags and MAKE in tags:
        maker = str(tags[MAKE]).strip().split(" ")[0].upper()
        return _RAW_BY_MAKE.get(maker, "DNG")
    return None


def identify(source: Path | bytes) -> ImageFormat | None:
    """The format of bytes or a file in the list, from their header; None if not one of them."""
    found = camera_raw(source)
    if found is not None:
        return found
    stream: BinaryIO | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream, formats=PILLOW_NAMES) as image:
            return by_pillow(image.format)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None


_OTHER_MAGIC = (
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"<svg", "SVG"),
    (b"<?xml", "SVG/XML"),
)
_VIDEO_BRANDS = (b"qt  ", b"isom", b"mp41", b"mp42", b"M4V ", b"3gp4", b"3gp5", b"avc1")


def unsupported_reason(source: Path | bytes) -> str:
    """Why bytes that no plugin of the list opened are refused, naming the format when known."""
    supported = f"supported formats: {described()}"
    start = head(source)
    name = next((label for magic, label in _OTHER_MAGIC if start.lstrip().startswith(magic)), None)
    if name is None and start[4:8] == b"ftyp":
        brand = start[8:12]
        name = "video" if brand in _VIDEO_BRANDS else f"ISO media ({brand.decode('latin-1').strip()})"
    if name is None:
        stream: BinaryIO | Path = io.BytesIO(source) if isinstance(source, bytes) else source
        # Pillow's other plugins only name it here; nothing is decoded
        with contextlib.suppress(Exception), Image.open(stream) as image:
            name = image.format
    if name is None:
        return f"not a recognised image format ({supported})"
    return f"{name} files are not supported ({supported})"
