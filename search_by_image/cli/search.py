"""Search the saved index from the command line, no server: `python with_faiss.py search
PHOTO_OR_FOLDER... [--collection NAME] [--filters JSON] [-k N] [--copies-only] [--format
table|json|csv] [--quiet]` (or `sbi-search` where the package is installed).

Each photo (a file, or every image under a folder as the indexer lists them) is searched by the
call POST /search makes (serving/search.py) with the file's bytes, so the same file gets the same
results; a file the server would refuse (not an image, too many pixels, over the upload limit)
is a row with the reason. Results go to stdout (search_output.py), logs and the progress bar
to stderr. Exit codes: 0 searched (refused files included), 1 no index or no such collection,
2 usage error (argparse's own, an input that does not exist, filters the collection cannot apply).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_by_image.cli.search_output import FORMATS, Result, Row, writer_for
from search_by_image.settings import Settings

if TYPE_CHECKING:
    from search_by_image.catalog.filters import Condition
    from search_by_image.ranking.collapse import CopySets
    from search_by_image.serving.collection import Collection
    from search_by_image.serving.embedder_pool import EmbedderPool
    from search_by_image.serving.snapshot import Snapshot

log = logging.getLogger(__name__)

OK, SETUP_ERROR, USAGE_ERROR = 0, 1, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="with_faiss.py search",
        description="Search the saved index for each photo, as POST /search does, without a server. "
        "Which of these photos do I already have? `with_faiss.py search --format csv INCOMING/` "
        "answers with one row per photo (found=yes: its best match is a copy).",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="PHOTO_OR_FOLDER",
        help="photos to search; a folder stands for every image under it (recursive)",
    )
    parser.add_argument(
        "--collection", default="default", metavar="NAME", help="collection to search (default: default)"
    )
    parser.add_argument(
        "--filters",
        metavar="JSON",
        help='metadata conditions, as POST /search takes them: {"category": "animals"}, '
        '{"category": ["animals", "food"]}, {"width": {"gte": 500}}',
    )
    parser.add_argument("-k", type=_positive, default=10, metavar="N", help="results per photo (default: 10)")
    parser.add_argument(
        "--copies-only", action="store_true", help="keep only results labelled copy (edited copies)"
    )
    parser.add_argument(
        "--collapse",
        action="store_true",
        help="one result per photo of the collection: its copies (the duplicate groups, computed "
        "first) folded into the best-ranked, as POST /search with collapse=copies",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="table: the top k of each photo; csv: one row per photo, its best match; json: "
        "everything (default: table on a terminal, csv when an input is a folder or stdout is not "
        "a terminal)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    where = parser.add_argument_group("the index (as given to with_faiss.py; flags override SBI_*)")
    where.add_argument(
        "--output", dest="saved_dir", type=Path, metavar="DIR", help="where with_faiss.py wrote the indexes"
    )
    where.add_argument(
        "--images", dest="images_dir", type=Path, metavar="DIR", help="the default collection's images"
    )
    where.add_argument(
        "--csv", dest="metadata_csv", type=Path, metavar="FILE", help="the default collection's metadata"
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    locations = {k: v for k in ("saved_dir", "images_dir", "metadata_csv") if (v := getattr(args, k))}
    settings = Settings(**locations)
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        log.error("no such file or folder: %s", ", ".join(missing))
        return USAGE_ERROR
    from search_by_image.catalog.filters import parse_filters
    from search_by_image.errors import FilterError, InvalidName, SearchByImageError

    try:
        conditions = parse_filters(args.filters)
    except FilterError as exc:
        log.error("--filters: %s", exc)
        return USAGE_ERROR
    photos = photos_of(args.inputs)
    folder_given = any(path.is_dir() for path in args.inputs)
    fmt = args.format or ("table" if sys.stdout.isatty() and not folder_given else "csv")
    try:
        searcher = Searcher.open(settings, args.collection)
    except InvalidName as exc:
        log.error("--collection: %s", exc)
        return USAGE_ERROR
    except SearchByImageError as exc:
        named = "" if args.collection == "default" else f" --collection {args.collection}"
        log.error("%s", exc)
        log.error("Index it first: python with_faiss.py%s --images FOLDER (see --help)", named)
        return SETUP_ERROR
    try:
        searcher.snapshot.allowed(conditions)  # a filter this collection cannot apply: said once
    except FilterError as exc:
        log.error("--filters: %s", exc)
        searcher.close()
        return USAGE_ERROR
    log.info(
        "Searching %d photo(s) in collection %s (%d images)",
        len(photos),
        searcher.snapshot.name,
        len(searcher.snapshot.store),
    )
    if args.collapse:
        log.info("Grouping the collection's copies (once per index version)")
        from search_by_image.ranking.collapse import CopySets
        from search_by_image.serving.duplicate_review import review_of

        known = review_of(searcher.collection).copy_groups(searcher.snapshot, wait=True)
        searcher.groups = known or CopySets()
    try:
        searched = searcher.search_all(photos, args.k, conditions, args.copies_only, fmt, args.quiet)
    except KeyboardInterrupt:
        log.error("Interrupted")
        return 130
    finally:
        searcher.close()
    refused = sum(row.error is not None for row in searched)
    log.info("%d photo(s) searched%s", len(searched), f", {refused} refused" if refused else "")
    return OK


def photos_of(inputs: list[Path]) -> list[tuple[str, Path]]:
    """(name as shown, file) of each input, every image of a folder in listing order (the
    indexer's list_images: its formats, recursive, hidden entries skipped)."""
    from search_by_image.indexing.image_folder import list_images

    photos = []
    for path in inputs:
        if not path.is_dir():
            photos.append((str(path), path))
            continue
        unreadable: list[tuple[str, str]] = []
        listed = list_images(path, unreadable)
        photos += [(str(path / name), path / name) for name in listed]
        for name, reason in unreadable:
            log.warning("%s: %s", path / name, reason)
        if not listed:
            log.warning("%s holds no images", path)
    return photos


@dataclass
class Searcher:
    """One collection's snapshot, loaded as the service loads it, and the settings searches use."""

    settings: Settings
    snapshot: Snapshot
    pool: EmbedderPool
    collection: Collection
    #: with --collapse: the collection's copies groups
    groups: CopySets | None = None

    @classmethod
    def open(cls, settings: Settings, name: str) -> Searcher:
        """Raises the SearchByImageError that says why the collection cannot be searched."""
        from search_by_image.catalog import locations
        from search_by_image.serving.collection import Collection
        from search_by_image.serving.embedder_pool import EmbedderPool
        from search_by_image.serving.service import limit_decoding

        limit_decoding(settings)  # as the service does
        pool = EmbedderPool(settings)
        try:
            collection = Collection(locations.find(settings, name), pool)
            collection.refresh()
            return cls(settings, collection.require(), pool, collection)
        except BaseException:
            pool.close()
            raise

    def close(self) -> None:
        self.pool.close()

    def search_all(
        self,
        photos: list[tuple[str, Path]],
        k: int,
        conditions: dict[str, Condition],
        copies_only: bool,
        fmt: str,
        quiet: bool,
    ) -> list[Row]:
        """Every photo searched in turn, each row written as soon as it is found."""
        from tqdm import tqdm

        rows = []
        out = writer_for(fmt, sys.stdout)
        # results and the bar on one terminal: the bar is cleared while a result is written
        shared = sys.stdout.isatty() and sys.stderr.isatty()
        with tqdm(total=len(photos), unit="photo", file=sys.stderr, disable=quiet or len(photos) < 2) as bar:
            for name, path in photos:
                row = self.search_one(name, path, k, conditions, copies_only)
                with tqdm.external_write_mode(file=sys.stdout) if shared else contextlib.nullcontext():
                    out.row(row)
                rows.append(row)
                bar.update()
        out.close()
        return rows

    def search_one(
        self, name: str, path: Path, k: int, conditions: dict[str, Condition], copies_only: bool
    ) -> Row:
        """The file's bytes searched by POST /search's call; a refusal is the row's error."""
        from search_by_image.errors import SearchByImageError
        from search_by_image.serving.search import Upload, search

        limit = self.settings.max_upload_bytes
        try:
            if path.stat().st_size > limit:
                return Row(name, [], f"larger than the upload limit of {limit} bytes (SBI_MAX_UPLOAD_BYTES)")
            upload = Upload(path.read_bytes(), k, 0, conditions, collapse=self.groups is not None)
            found = search(self.snapshot, upload, self.settings.max_image_pixels, self.groups)
        except SearchByImageError as exc:
            return Row(name, [], str(exc))
        except OSError as exc:
            return Row(name, [], f"cannot be read: {exc.strerror or exc}")
        labelled = found.hits.labelled()
        metadata = self.snapshot.metadata.rows_for(hit.id for hit in labelled)
        results = [
            Result(rank, hit.path, round(hit.score, 6), hit.match, hit.inliers, metadata.get(hit.id, {}))
            for rank, hit in enumerate(labelled, start=1)
            if hit.match == "copy" or not copies_only
        ]
        return Row(name, results, None)


def run() -> int:
    """`sbi-search`: `main` with the process' arguments."""
    return main()
