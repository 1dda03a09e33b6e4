"""The indexer's command line: `python with_faiss.py [--collection NAME] [--images DIR] [--rebuild]`
(or `sbi-index` where the package is installed); `python with_faiss.py search PHOTO...` searches
the saved index instead (search.py).

Thin over `search_by_image.indexing.indexer`; every flag overrides the matching SBI_* setting
(search_by_image/settings.py). Heavy modules are imported after the arguments are parsed, so
`--help` answers at once.
"""

import argparse
import gc
import logging
import sys
from pathlib import Path
from typing import get_args

from search_by_image.cli import stopping
from search_by_image.ranking.match_kinds import COPY_DEFAULTS
from search_by_image.settings import ModelChoice, Pooling, Precision, ResizePolicy, Runtime, Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(
        description="Embed every image of a folder and write a FAISS index to the output folder "
        "(faiss_index.faiss, features.npy, images_paths.txt, manifest.json). Incremental: only new "
        "or changed images are embedded. Flags override SBI_* environment variables.",
        epilog="To search the saved index from the command line: with_faiss.py search PHOTO_OR_FOLDER... "
        "(with_faiss.py search --help)",
    )
    parser.add_argument(
        "--collection",
        default="default",
        help="collection to build or update (default: the default collection). A "
        "named one is stored in <output>/collections/NAME and remembers its --images "
        "and --csv, which it needs the first time",
    )
    parser.add_argument(
        "--images",
        dest="images_dir",
        type=Path,
        help=f"images folder, searched recursively (default: {defaults['images_dir'].default})",
    )
    parser.add_argument(
        "--output",
        dest="saved_dir",
        type=Path,
        help=f"where indexes are written (default: {defaults['saved_dir'].default})",
    )
    parser.add_argument(
        "--csv",
        dest="metadata_csv",
        type=Path,
        help="metadata CSV: one column names the image, the others are returned "
        f"with results (default: {defaults['metadata_csv'].default}; for a named "
        "collection, metadata.csv in its folder)",
    )
    parser.add_argument(
        "--model",
        choices=get_args(ModelChoice),
        help="backbone; auto = ResNet50 if its weights can be had, else the bundled "
        "efficientnet_lite0 (default: auto)",
    )
    parser.add_argument(
        "--resize",
        choices=get_args(ResizePolicy),
        help="keep_aspect: whole image, longer side = --image-size; center_crop: "
        "square crop of the centre (default: keep_aspect)",
    )
    parser.add_argument("--image-size", type=int, help="model input side in pixels (default: 448)")
    parser.add_argument("--pooling", choices=get_args(Pooling), help="descriptor pooling (default: gem)")
    parser.add_argument(
        "--grayscale",
        action="store_const",
        const=True,
        help="drop colour: match shapes and textures only (default: off)",
    )
    parser.add_argument(
        "--runtime",
        choices=get_args(Runtime),
        help="auto: ONNX Runtime for EfficientNet-Lite on the CPU, torch otherwise (default: auto)",
    )
    parser.add_argument(
        "--precision",
        choices=get_args(Precision),
        help="auto: int8 EfficientNet-Lite0 on CPUs with VNNI, else bf16 where the "
        "CPU/GPU runs it natively, else fp32; an existing collection keeps its "
        "int8 or float model (default: auto)",
    )
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default: 8)")
    parser.add_argument(
        "--workers",
        type=int,
        help="CPU: processes that decode and embed a share "
        "of the images each, about one per core; GPU: decode processes (default: 2)",
    )
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="embed every image again instead of updating the existing index",
    )
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="where images are embedded: this process, or Ray Data workers "
        "(pip install 'ray[data]'); both resume an interrupted run (default: local)",
    )
    parser.add_argument(
        "--ray-address", help="an existing Ray cluster, e.g. ray://head:10001 (default: start a local Ray)"
    )
    parser.add_argument(
        "--ray-workers", type=int, default=2, help="Ray workers embedding at once, one CPU each (default: 2)"
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another writer of the collection (an API add or delete, "
        "another run) to finish before giving up (default: 60)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--store",
        metavar="milvus://HOST:PORT",
        help="keep the collection in Milvus, served from there by any number of service replicas "
        "(docs/milvus.md): indexed here, then exported and checked (python -m "
        "search_by_image.cli.storage export); one already there is brought back first",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep watching the images folder and index files as "
        "they appear, change or go away, until Ctrl-C (quiet period: "
        "SBI_WATCH_QUIET_MS, default 1000)",
    )
    found = parser.add_argument_group("duplicates (uses the saved index; indexes nothing)")
    found.add_argument(
        "--duplicates",
        action="store_true",
        help="print the groups of near-duplicate images of the collection",
    )
    found.add_argument(
        "--threshold",
        type=float,
        help=f"similarity above which two images are duplicates, in search-score units ({COPY_DEFAULTS})",
    )
    found.add_argument("--format", choices=["csv", "json"], default="csv", help="output (default: csv)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["search"]:  # `with_faiss.py search ...`: no indexing flag is a bare word
        from search_by_image.cli import search

        return search.main(words[1:])
    args = parse_args(words)
    per_run = ("images_dir", "metadata_csv", "watch")  # the location resolves the first two
    overrides = {k: v for k, v in vars(args).items() if v is not None and k in Settings.model_fields}
    overrides = {k: v for k, v in overrides.items() if k not in per_run}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from search_by_image.catalog import locations  # torch import only after --help
    from search_by_image.errors import SearchByImageError

    if args.duplicates:
        return print_duplicates(settings, args)
    try:
        location = locations.for_indexing(settings, args.collection, args.images_dir, args.metadata_csv)
        if args.engine == "local" and (args.rebuild or not location.saved_dir.exists()):
            start_workers_server(settings)
        from search_by_image.cli import storage
        from search_by_image.indexing.engines import LocalEngine, RayEngine
        from search_by_image.indexing.indexer import update_index

        if args.store and (code := storage.before_indexing(settings, location, args.store)):
            return code

        report = update_index(
            settings,
            location,
            rebuild=args.rebuild,
            progress=not args.quiet,
            engine=RayEngine(args.ray_address, args.ray_workers) if args.engine == "ray" else LocalEngine(),
            lock_wait=args.lock_wait,
        )
    except SearchByImageError as exc:  # anything else is a bug: its traceback is kept
        logging.error("%s", exc)
        return 1
    logging.info("%s -> %s (collection %s)", report.summary(), location.saved_dir, location.name)
    if args.store:
        return storage.export_after_indexing(settings, location.name, args.store)
    if args.watch:
        follow_folder(settings, location)
    return 0


def start_workers_server(settings: Settings) -> None:
    """A run that embeds every image (a first build, a rebuild) on CPU worker processes starts
    their server before importing the rest of the indexer, so the two import side by side
    (worker_processes.start_early). Not for a run on an existing index: most embed nothing, and
    on a loaded machine the unused server's imports slowed one on an unchanged folder from 1.6 to
    2.3 s."""
    if settings.workers > 1 and not settings.device.startswith("cuda"):
        from search_by_image.indexing import worker_processes

        worker_processes.start_early()


def run() -> int:
    """`main` as a process of its own (with_faiss.py, sbi-index): the worker processes' server is
    stopped (worker_processes.stop), and the objects are frozen out of the garbage collector
    before the interpreter's teardown, whose collections walked every one
    of them again (a sixth of a second of CPU with the package imported, on a loaded 2-core
    machine; bench/README.md, camera indexing). SIGINT and SIGTERM stop it (cli/stopping.py).
    Not for callers that keep running (tests)."""
    stopping.on_signals()
    code = main()
    from search_by_image.indexing import worker_processes

    worker_processes.stop()  # its workers are done; a run with nothing to embed never used it
    gc.freeze()
    return code


def follow_folder(settings: Settings, location) -> None:
    """--watch: the collection follows its folder (search_by_image/indexing/watch.py) until Ctrl-C."""
    import threading

    from search_by_image.indexing import watch
    from search_by_image.indexing.background import BackgroundIndexer

    def reindex(changed) -> None:
        BackgroundIndexer(settings, lambda: None, {changed.name: changed}).start().wait()

    logging.info("Watching %s for changes (Ctrl-C to stop)", location.images_dir)
    try:
        watch.follow(lambda: {location.name: location}, reindex, settings.watch_quiet_ms, threading.Event())
    except KeyboardInterrupt:
        logging.info("Stopped watching")


def print_duplicates(settings: Settings, args: argparse.Namespace) -> int:
    import contextlib
    import functools

    from search_by_image.catalog import locations
    from search_by_image.catalog.review_decisions import ReviewDecisions
    from search_by_image.cli import pass_progress
    from search_by_image.errors import SearchByImageError
    from search_by_image.index.live_store import load_live
    from search_by_image.ranking import verifier
    from search_by_image.ranking.check_processes import ProcessChecks
    from search_by_image.ranking.duplicate_pass import DuplicatePass
    from search_by_image.ranking.duplicates import write_report

    try:
        location = locations.find(settings, args.collection)
        store, _ = load_live(location.saved_dir)
    except SearchByImageError as exc:
        logging.error("%s", exc)
        return 1
    checker = None
    if settings.verify_top and verifier.available():  # copies checked with local features
        checker = verifier.Verifier(location, settings.max_image_pixels, settings.verify_top)
    apart = ReviewDecisions(location.saved_dir).apart_ids(store.id_of)  # "not duplicates" on the page
    with contextlib.ExitStack() as held:
        is_copy = prefetch = processes = None
        if checker is not None:  # each image's keypoints (and its mirror's) read once
            held.enter_context(checker.holding(2 * len(store)))
            is_copy = functools.partial(checker.is_copy, store)
            prefetch = functools.partial(checker.preload, store)
            processes = ProcessChecks.of(checker, store, settings.duplicates_workers)
        done = pass_progress.with_bar(
            lambda progress: DuplicatePass.of(store, is_copy, prefetch, progress, processes), args.quiet
        )
        groups = done.groups(args.threshold, lambda a, b: (a, b) not in apart, is_copy)
    write_report(groups, sys.stdout, args.format)
    logging.info(
        "%d groups of near-duplicates, %d images, among %d",
        len(groups),
        sum(len(g.images) for g in groups),
        len(store),
    )
    return 0
