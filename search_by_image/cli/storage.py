"""Move a collection between its saved folder (the embedded default) and Milvus, and check both
storages agree.

    python -m search_by_image.cli.storage export --to milvus://HOST:19530 [--collection NAME]
        [--check 100] [--filters JSON ...]
    python -m search_by_image.cli.storage import --from milvus://HOST:19530 [--collection NAME]
        [--check 100] [--filters JSON ...]
    python -m search_by_image.cli.storage check --store milvus://HOST:19530 [--collection NAME]
        [--check 100] [--filters JSON ...]

`export` copies the collection's saved index (ids, searchable vectors, paths, metadata) into a
Milvus collection `sbi_<name>`, records where in `<saved>/storage.json`, then runs `check`:
the counts must agree and `--check` searches by stored vectors (plus one per `--filters`) must
give the same top 10 through both. `import` brings the saved folder to the engine's rows (the
images added and deleted through replicas, their metadata: indexing/storage_import.py), checks
the same way, then removes `storage.json`: the collection is served from its saved folder again
(restart the service). `with_faiss.py --store milvus://HOST:PORT` indexes, then exports. Exit
codes: 0 agreed, 1 they differ or the engine did not answer, 2 usage error. Run either again
after an interruption: rows are replaced by id.
"""

from __future__ import annotations

import argparse
import logging
import sys

from search_by_image.catalog import locations, metadata_import
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.errors import SearchByImageError
from search_by_image.index import storage_transfer
from search_by_image.index.live_store import load_live
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.store import IndexStore
from search_by_image.index.vector_storage import StorageAddress
from search_by_image.indexing import storage_import
from search_by_image.serving.engine_writes import mark_writes
from search_by_image.settings import Settings

log = logging.getLogger(__name__)

AGREED, DIFFERENT, USAGE_ERROR = 0, 1, 2
#: seconds one call of an export or check may take (batches of 2,000 rows, a loaded engine), and
#: the first call, which says whether the engine answers at all
EXPORT_TIMEOUT_S, PROBE_TIMEOUT_S = 120.0, 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search_by_image.cli.storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, flag, text in (
        ("export", "--to", "copy the saved collection into Milvus, then check"),
        ("import", "--from", "bring the saved collection back from Milvus, check, serve it embedded"),
        ("check", "--store", "compare the saved collection with its copy in Milvus"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(flag, dest="store", required=True, metavar="milvus://HOST:PORT")
        command.add_argument("--collection", default=locations.DEFAULT, metavar="NAME")
        command.add_argument("--check", type=int, default=100, metavar="N", help="searches compared")
        command.add_argument(
            "--filters", action="append", default=[], metavar="JSON", help="a filtered search to compare"
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parse_args(argv)
    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(message)s")
    try:
        address = StorageAddress.parse(args.store)
        if address is None:
            raise ValueError(f"{args.store!r} is the embedded store; name a milvus://host:port")
        filters = [parse_filters(text) for text in args.filters]
    except (ValueError, SearchByImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return _run(args.command, settings, args.collection, address, args.check, filters)
    except SearchByImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return DIFFERENT


def _run(command: str, settings: Settings, name: str, address: StorageAddress, sample: int, filters) -> int:
    location = locations.find(settings, name)
    metadata = MetadataView(location.saved_dir)
    target = MilvusStorage(address, name, metadata.kinds, timeout=PROBE_TIMEOUT_S)
    target.probe()  # an engine that does not answer is said now, not after a long call's timeout
    target.timeout = EXPORT_TIMEOUT_S
    try:
        if command == "import":
            target.kinds.update(storage_transfer.recorded_kinds(location.saved_dir))
            store, report = storage_import.import_collection(settings, location, target)
            log.info("%s", report.summary())
        else:
            store = _saved(location)
        if command == "export":
            _export(store, metadata, target, location, address)
        agreement = storage_transfer.compare(store, metadata, target, sample, filters)
    finally:
        target.close()
    print(agreement.summary())
    for difference in agreement.differences:
        print(f"  differs: {difference}")
    if command == "import" and agreement.ok:
        (location.saved_dir / storage_transfer.STORAGE_FILE).unlink(missing_ok=True)
        log.info("collection %r is served from its saved folder again (restart the service)", name)
    return AGREED if agreement.ok else DIFFERENT


def _saved(location: locations.Location) -> IndexStore:
    """The saved collection with its live adds and deletes, its metadata CSV joined."""
    live, _ = load_live(location.saved_dir)
    store = live.folded() if live.delta_size else live.base
    metadata_import.sync(location.saved_dir, location.metadata_csv, store)
    return store


def _export(store: IndexStore, metadata, target: MilvusStorage, location, address: StorageAddress) -> None:
    done = 0

    def progress(rows: int) -> None:
        nonlocal done
        done += rows
        log.info("exported %d of %d images", done, len(store))

    storage_transfer.export(store, metadata, target, progress)
    mark_writes(location.saved_dir)  # replicas serving it list the engine again
    storage_transfer.record(location.saved_dir, address, target)
    log.info("collection %r now names %s in %s", location.name, address, storage_transfer.STORAGE_FILE)


def before_indexing(settings: Settings, location: locations.Location, store_text: str) -> int:
    """`with_faiss.py --store`, before it indexes: an engine that does not answer said at once;
    a collection already in it brought back first (`import`), so that the run adds to the
    engine's rows and the export after it replaces them with the same ids."""
    if (location.saved_dir / storage_transfer.STORAGE_FILE).is_file():
        return main(
            ["import", "--from", store_text, "--collection", location.name, "--check", "10"], settings
        )
    try:
        address = StorageAddress.parse(store_text)
        if address is None:
            raise ValueError(f"{store_text!r} is the embedded store; name a milvus://host:port")
        MilvusStorage(address, location.name, timeout=PROBE_TIMEOUT_S).probe()
    except (ValueError, SearchByImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR if isinstance(exc, ValueError) else DIFFERENT
    return AGREED


def export_after_indexing(settings: Settings, name: str, store_text: str, sample: int = 100) -> int:
    """`with_faiss.py --store`: the collection just indexed exported and checked."""
    return main(["export", "--to", store_text, "--collection", name, "--check", str(sample)], settings)


if __name__ == "__main__":
    sys.exit(main())
