"""Quality measured through the product's own path: a collection indexed as `python with_faiss.py`
does it, queried through the call POST /search makes (serving.search), and what bench/quality.py
and the quality tests read from it (source ranks of altered copies, duplicates, identical photos).
"""

from __future__ import annotations

import hashlib
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np

from search_by_image.evaluation.measures import GroundTruth, average_precision
from search_by_image.serving.snapshot import Labelled
from search_by_image.settings import Settings


def index_like_a_user(
    images: dict[str, Path | bytes], root: Path, start_from: Path | None = None, **overrides
) -> Settings:
    """Index `images` (name -> file to link, or bytes to write) the way `with_faiss.py` does.

    The images are symlinked (or written) into `root/images`, and the indexer run with the
    default settings on the bundled model unless `overrides` say otherwise; returns the settings
    a service for that collection needs. `start_from`: a saved folder of some of these images to
    update (a copy of it), as a user adding photos to an indexed folder would: only the new ones
    are embedded.
    """
    import shutil

    from search_by_image.indexing.indexer import update_index

    if start_from is not None:
        shutil.copytree(start_from, root / "saved", ignore=shutil.ignore_patterns("onnx"))

    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in images.items():
        target = folder / name
        if isinstance(source, bytes):
            target.write_bytes(source)
        elif not target.exists():
            target.symlink_to(source.resolve())
    settings = Settings(
        **{
            "images_dir": folder,
            "metadata_csv": root / "no-metadata.csv",
            "saved_dir": root / "saved",
            "model": "efficientnet_lite0",
            **overrides,
        }
    )
    update_index(settings, progress=False)
    return settings


class ProductSearch:
    """Rankings of a collection as POST /search computes them, in-process: the upload searched by
    the route's own call (serving.search) with k = the collection size, each result labelled as
    the API labels it. No API layer: nothing is presented, no request metric recorded."""

    def __init__(self, settings: Settings):
        from search_by_image.serving.service import SearchService

        self.settings = settings
        self.service = SearchService(settings)
        self.service.refresh()
        self.collection = self.service.default
        self.store = self.collection.require().store
        #: answers already computed, by (upload digest, k, collapse, store version): a protocol
        #: that asks the same search twice (mAP, then the top 10s' labels) pays for it once
        self._answers: dict[tuple[str, int | None, bool, str], Answer] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.service.stop()

    def results(self, data: bytes, k: int | None = None) -> list[tuple[str, float]]:
        """(path, score) of the top k (default: every image), best first."""
        return [(hit.path, hit.score) for hit in self.response(data, k).results]

    def response(self, data: bytes, k: int | None = None, collapse: bool = False) -> Answer:
        """What POST /search finds for an upload (top k, default every image); `collapse`: with
        collapse=copies, the collection's copies groups computed first (as they are once the
        service has grouped them in the background)."""
        from search_by_image.serving.search import Upload, search

        snapshot = self.collection.require()
        key = (hashlib.sha256(data).hexdigest(), k, collapse, snapshot.store.version)
        if key in self._answers:
            return self._answers[key]
        groups = None
        if collapse:
            from search_by_image.serving.duplicate_review import review_of

            groups = review_of(self.collection).copy_groups(snapshot, wait=True)
        upload = Upload(data, k or len(self.store), collapse=collapse)
        found = search(snapshot, upload, self.settings.max_image_pixels, groups)
        self._answers[key] = Answer(found.hits.labelled(), found.hits.copies)
        return self._answers[key]

    def ranking(self, data: bytes) -> list[str]:
        return [path for path, _ in self.results(data)]


@dataclass(frozen=True)
class Answer:
    """A search's results, best first, as the API labels them (path, score, match, check)."""

    results: list[Labelled]
    #: with collapse: how many copies each result stands for
    copies: list[int] = field(default_factory=list)


def product_map(search: ProductSearch, dataset_dir: Path, truth: GroundTruth) -> tuple[float, float]:
    """Holidays mAP and P@1 through the product: each query photo uploaded as its file's bytes,
    the query itself dropped from its results (asking for every image = k + 1)."""
    group_of = dict(zip(truth.files, truth.groups))
    ranked = []
    for query in truth.queries:
        name = truth.files[query]
        order = [p for p in search.ranking((dataset_dir / "images" / name).read_bytes()) if p != name]
        ranked.append(np.array([group_of.get(p) == truth.groups[query] for p in order]))
    return (
        float(np.mean([average_precision(r, int(r.sum())) for r in ranked])),
        float(np.mean([r[0] for r in ranked])),
    )


@dataclass(frozen=True)
class SourceRanks:
    """Where each altered copy's source photo came in the copy's results (1 = first)."""

    ranks: np.ndarray
    edits: list[tuple[str, ...]]
    #: copies the product refused (over the upload's pixel limit: 413), not in `ranks`
    refused: int = 0

    @property
    def rank1(self) -> float:
        return float(np.mean(self.ranks == 1))

    @property
    def mean_rank(self) -> float:
        return float(np.mean(self.ranks))

    def by_edit(self) -> dict[str, tuple[int, float, float]]:
        """edit -> (copies, rank-1 rate, mean rank) over copies that include that edit."""
        out = {}
        for edit in sorted({e for edits in self.edits for e in edits} | {"combined"}):
            rows = [i for i, e in enumerate(self.edits) if (len(e) > 1 if edit == "combined" else edit in e)]
            if rows:
                out[edit] = (
                    len(rows),
                    float(np.mean(self.ranks[rows] == 1)),
                    float(np.mean(self.ranks[rows])),
                )
        return out


def source_ranks(search: ProductSearch, copies, names: list[str]) -> SourceRanks:
    """Rank of each copy's source (`names[copy.source]`) while the whole collection is indexed."""
    from search_by_image.errors import SearchByImageError

    ranks, edits, refused = [], [], 0
    for copy in copies:
        try:
            ranking = search.ranking(copy.data)
        except SearchByImageError:  # what POST /search answers with a 4xx (too many pixels)
            refused += 1
            continue
        ranks.append(ranking.index(names[copy.source]) + 1)
        edits.append(copy.edits)
    return SourceRanks(np.array(ranks), edits, refused)


@dataclass(frozen=True)
class DuplicateFinding:
    planted: int
    found: int  # planted copies in the same group as their original
    originals: int
    falsely_grouped: int  # original photos grouped with another, distinct original
    #: of those, photos grouped only with photos pixel-identical to them (`identical_pairs`)
    identical: int = 0

    @property
    def false_share_distinct(self) -> float:
        """False groupings not counting photos grouped only with an identical photo."""
        return (self.falsely_grouped - self.identical) / self.originals if self.originals else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.planted if self.planted else 0.0

    @property
    def false_share(self) -> float:
        return self.falsely_grouped / self.originals if self.originals else 0.0


def duplicate_finding(
    groups,
    copy_of: dict[str, str],
    originals: list[str],
    identical: AbstractSet[frozenset[str]] = frozenset(),
) -> DuplicateFinding:
    """Score duplicate groups (duplicates.Group) against planted copies: `copy_of` maps each
    planted copy's path to its original's; any two distinct originals in one group are a false
    grouping of both. `identical`: pairs of originals that are the same picture (counted apart)."""
    group_of = {path: n for n, group in enumerate(groups) for _, path in group.images}
    found = sum(
        1
        for copy, original in copy_of.items()
        if copy in group_of and group_of[copy] == group_of.get(original)
    )
    members: dict[int, list[str]] = {}
    for path in originals:
        if path in group_of:
            members.setdefault(group_of[path], []).append(path)
    false = only_identical = 0
    for path in originals:
        others = [o for o in members.get(group_of.get(path, -1), []) if o != path]
        if others:
            false += 1
            only_identical += all(frozenset((path, o)) in identical for o in others)
    return DuplicateFinding(len(copy_of), found, len(originals), false, only_identical)


def identical_pairs(
    files: dict[str, Path], tolerance: float = 1.5, darkest: float = 40.0
) -> set[frozenset[str]]:
    """Pairs of photos that are the same picture: the same bytes, or greyscale 64x48 versions
    (EXIF-oriented, landscape) within `tolerance` grey levels of each other on average. Photos
    darker than `darkest` on average are left out (two night shots are close in that sense
    without being the same picture). On holidays_subset300: 103100/103900, 103101/103901 and
    103102/103902, the same three photos filed in two groups (two of them byte for byte)."""
    import hashlib

    from PIL import Image, ImageOps

    names = sorted(files)
    digests, small = [], []
    for name in names:
        data = files[name].read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        with Image.open(files[name]) as image:
            grey = ImageOps.exif_transpose(image).convert("L")
        if grey.width < grey.height:
            grey = grey.rotate(90, expand=True)
        small.append(np.asarray(grey.resize((64, 48), Image.Resampling.BOX), np.float32).ravel())
    pixels = np.stack(small)
    bright = pixels.mean(axis=1) >= darkest
    pairs: set[frozenset[str]] = set()
    for i in range(len(names)):
        difference = np.abs(pixels[i + 1 :] - pixels[i]).mean(axis=1)
        close = np.flatnonzero((difference <= tolerance) & bright[i] & bright[i + 1 :]) + i + 1
        same_bytes = [j for j in range(i + 1, len(names)) if digests[i] == digests[j]]
        pairs.update(frozenset((names[i], names[int(j)])) for j in [*close, *same_bytes])
    return pairs
