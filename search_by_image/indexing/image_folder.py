"""An images folder for the indexer: its files by relative path, and a dataset that decodes them.

Every file is decoded by decoding.open_rgb, like an upload; a file that cannot be read is a
reason, never an exception that stops the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.catalog.thumbnails import Thumbnails, covering, thumbnail_source
from search_by_image.images import formats
from search_by_image.images.decoding import UnreadableImage, open_rgb

#: The suffixes the indexer scans: the one list of formats (search_by_image/images/formats.py).
IMAGE_SUFFIXES = formats.SUFFIXES


@dataclass(frozen=True)
class Fingerprint:
    """What tells an unchanged file from a changed one without reading it."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns)


def list_images(root: Path, unreadable: list[tuple[str, str]] | None = None) -> dict[str, Fingerprint]:
    """Images under `root` (recursive, hidden entries skipped), as sorted relative POSIX paths.

    An entry that cannot even be looked at (a dangling symlink, a symlink loop, no permission)
    is left out and appended to `unreadable` as (path, reason), so one bad entry stops nothing."""
    found: dict[str, Fingerprint] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            try:
                found[relative] = Fingerprint.of(path)
            except OSError as exc:
                if unreadable is not None:
                    unreadable.append((relative, f"cannot be read: {exc.strerror or exc}"))
    return dict(sorted(found.items()))


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
    a run; `collate` keeps indices next to pixels, so features and paths cannot drift apart. With
    `thumbnails`, each image's grid thumbnail is written from the same decode.
    """

    def __init__(
        self,
        root: Path,
        paths: list[str],
        preprocess: Callable[[Image.Image], np.ndarray],
        max_pixels: int,
        thumbnails: Thumbnails | None = None,
    ):
        self.root = root
        self.paths = paths
        self.preprocess = preprocess
        self.max_pixels = max_pixels
        self.thumbnails = thumbnails

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        size_for = getattr(self.preprocess, "resized_size", None)
        file = self.root / self.paths[index]
        try:
            image = open_rgb(file, self.max_pixels, covering(size_for) if self.thumbnails else size_for)
        except (UnreadableImage, OSError) as exc:
            return index, None, str(exc)
        prepared = self.preprocess(image)
        if self.thumbnails is not None:
            with contextlib.suppress(OSError):
                stat = file.stat()
                self.thumbnails.write_quietly(
                    self.paths[index],
                    (stat.st_size, stat.st_mtime_ns),
                    thumbnail_source(image, prepared, getattr(self.preprocess, "keeps_whole_image", False)),
                )
        return index, prepared, ""

    @staticmethod
    def collate(samples: list[tuple[int, np.ndarray | None, str]]) -> Batch:
        good = [(index, prepared) for index, prepared, _ in samples if prepared is not None]
        return Batch(
            indices=[index for index, _ in good],
            prepared=[prepared for _, prepared in good],
            failed=[(index, reason) for index, prepared, reason in samples if prepared is None],
        )
