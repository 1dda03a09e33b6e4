"""An images folder for the indexer: its files by relative path, and a dataset that decodes them.

Every file is decoded by decoding.open_rgb, like an upload; a file that cannot be read is a
reason, never an exception that stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.catalog.keypoint_store import StoredKeypoints
from search_by_image.catalog.thumbnails import Thumbnails, covering, thumbnail_source
from search_by_image.images import formats
from search_by_image.images.decoding import UnreadableImage, open_rgb
from search_by_image.ranking import stored_keypoints

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


#: What the dataset yields per image: (index, prepared pixels or None, why not, keypoints or None)
Sample = tuple[int, "np.ndarray | None", str, "tuple[str, tuple[int, int], StoredKeypoints] | None"]


@dataclass
class Batch:
    """Decoded images of one DataLoader batch; `failed` holds (index, reason) for skipped files."""

    indices: list[int]
    #: `Preprocessing` outputs (uint8 pixels), one per index
    prepared: list[np.ndarray]
    failed: list[tuple[int, str]]
    #: (path, fingerprint, keypoints) of the images whose keypoints were computed
    keypoints: list[tuple[str, tuple[int, int], StoredKeypoints]] = field(default_factory=list)


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
        keypoints: bool = False,
    ):
        self.keypoints = keypoints
        self.root = root
        self.paths = paths
        self.preprocess = preprocess
        self.max_pixels = max_pixels
        self.thumbnails = thumbnails

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        size_for = getattr(self.preprocess, "resized_size", None)
        file = self.root / self.paths[index]
        try:
            image = open_rgb(file, self.max_pixels, covering(size_for) if self.thumbnails else size_for)
        except (UnreadableImage, OSError) as exc:
            return index, None, str(exc), None
        prepared = self.preprocess(image)
        if self.thumbnails is None and not self.keypoints:
            return index, prepared, "", None
        whole = getattr(self.preprocess, "keeps_whole_image", False)
        source = thumbnail_source(image, prepared, whole)
        try:
            stat = file.stat()
        except OSError:
            return index, prepared, "", None
        fingerprint = (stat.st_size, stat.st_mtime_ns)
        if self.thumbnails is not None:
            self.thumbnails.write_quietly(self.paths[index], fingerprint, source)
        found = None
        if self.keypoints:
            found = (self.paths[index], fingerprint, stored_keypoints.of_image(file, source, self.max_pixels))
        return index, prepared, "", found

    @staticmethod
    def collate(samples: list[Sample]) -> Batch:
        good = [(index, prepared) for index, prepared, _, _ in samples if prepared is not None]
        return Batch(
            indices=[index for index, _ in good],
            prepared=[prepared for _, prepared in good],
            failed=[(index, reason) for index, prepared, reason, _ in samples if prepared is None],
            keypoints=[found for _, _, _, found in samples if found is not None],
        )
