"""Build or update the saved index of an images folder (what `python with_faiss.py` runs).

Incremental by default: files whose size and mtime are unchanged keep their stored features,
new and changed files are embedded, deleted files are dropped. A different model or
preprocessing than the one that built the index means every file is embedded again. A path keeps
its id across runs, so ids handed out by the API stay valid. Options that change what a
descriptor means (model, preprocessing, pooling) are refused on an existing collection unless
`--rebuild` asks for every image to be embedded again; `auto` keeps the collection's model.

The run holds the collection's writer lock from reading the old index to committing the new one:
an image added through the API meanwhile waits (or is refused with a retry hint) instead of being
overwritten by a commit that never saw it. Each image's local keypoints are stored as it is
embedded; indexed images that have none get theirs at the end of a run (keypoint_fill.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_by_image.catalog import unreadable
from search_by_image.catalog.database import transaction
from search_by_image.catalog.locations import Location, default_location
from search_by_image.catalog.metadata_import import sync
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.errors import ImagesFolderMissing, IndexCorrupt, IndexMissing
from search_by_image.index import live_log
from search_by_image.index.disk import writer_lock
from search_by_image.index.format_upgrade import upgrade
from search_by_image.index.live_files import finish_deletes, remove_orphan_uploads
from search_by_image.index.live_store import load_live
from search_by_image.index.store import IndexStore
from search_by_image.indexing.engines import Engine, LocalEngine
from search_by_image.indexing.image_folder import list_images
from search_by_image.indexing.keypoint_fill import fill
from search_by_image.indexing.report import IndexReport, Progress, spec_mismatch
from search_by_image.indexing.shards import ShardFiles, plan, run_key
from search_by_image.layout import CATALOG_FILE, UPLOADS_DIR
from search_by_image.model.embedder import EmbedderSpec
from search_by_image.ranking.verifier import available
from search_by_image.settings import Settings

log = logging.getLogger(__name__)


def _load_previous(location: Location) -> tuple[IndexStore | None, int]:
    """The saved index with the live writes logged since it was written folded in, and the last
    live write's `seq` (what the new index will hold). Deletes cut short are finished and
    uploads no add committed removed first, so the folder scan sees what the service serves."""
    try:
        live, changes = load_live(location.saved_dir)
    except IndexMissing:
        return None, 0
    except IndexCorrupt as exc:
        log.warning("Existing index is unusable, rebuilding it: %s", exc)
        return None, 0
    finish_deletes(live, changes, location.images_dir, location.trash_dir)
    remove_orphan_uploads(live, location.images_dir, UPLOADS_DIR)
    return (live.folded() if live.delta_size else live.base), live.seq


def _forget_folded(saved_dir: Path, store: IndexStore) -> None:
    """The live writes the committed index holds leave the log; its ids are never given again."""
    if not (saved_dir / CATALOG_FILE).is_file() and not store.manifest.folded_seq:
        return
    with contextlib.closing(live_log.open_log(saved_dir)) as conn, transaction(conn):
        live_log.remove_folded(conn, store.manifest.folded_seq)
        live_log.raise_next_id(conn, store.manifest.next_id)


def update_index(
    settings: Settings,
    location: Location | None = None,
    rebuild: bool = False,
    progress: bool = True,
    engine: Engine | None = None,
    status: Progress | None = None,
    lock_wait: float = 0.0,
) -> IndexReport:
    """Bring a collection's saved index in line with its images folder (the module docstring).

    `location` defaults to the default collection of `settings`; `engine` embeds the new images
    (engines.py; default: this machine); `status`, if given, is kept up to date as the run goes;
    `lock_wait`: seconds to wait for another writer (an API add or delete) before IndexBusy.
    """
    engine = engine or LocalEngine()
    location = location or default_location(settings)
    if not location.images_dir.is_dir():
        raise ImagesFolderMissing(f"images folder {location.images_dir} does not exist")
    status = status or Progress()

    def waiting() -> None:
        log.info(
            "Another writer (an API add or delete, or another indexer run) is updating %s: "
            "waiting up to %g s for it to finish",
            location.saved_dir,
            lock_wait,
        )

    with writer_lock(location.saved_dir, wait=lock_wait, on_wait=waiting):
        report = _update_locked(settings, location, rebuild, progress, engine, status)
        unreadable.record(location.saved_dir, report.skipped)
    status.phase = "finished"
    return report


@dataclass
class _Plan:
    """What a run has to do, from the images folder and the collection's current index."""

    spec: EmbedderSpec
    #: the index being updated (None: a first build or --rebuild)
    previous: IndexStore | None
    #: relative path -> (size, mtime_ns) of every image found
    fingerprints: dict[str, tuple[int, int]]
    #: paths whose stored features are still good, in the previous index's order
    keep: list[str]
    #: paths to embed
    todo: list[str]
    #: ids already given out (kept across --rebuild), and the next free one
    ids_by_path: dict[str, int]
    next_id: int
    #: the last live write the new index holds (live_log.py)
    folded_seq: int
    #: nothing but new images to add: no removal, same whitening
    unchanged: bool
    #: entries named like images that cannot be looked at (path, reason)
    unlisted: list[tuple[str, str]]


def _update_locked(
    settings: Settings,
    location: Location,
    rebuild: bool,
    progress: bool,
    engine: Engine,
    status: Progress,
) -> IndexReport:
    started = time.perf_counter()
    upgrade(location.saved_dir)  # an older format's folder, in place (no rewrite of the index)
    status.phase = "scanning"
    run = _plan(settings, location, rebuild)
    report = IndexReport(
        reused=len(run.keep),
        removed=len(run.previous.paths) - len(run.keep) if run.previous else 0,
        skipped=list(run.unlisted),
    )
    if run.unchanged and not run.todo:
        sync(location.saved_dir, location.metadata_csv, run.previous)
        return _finished(report, run.previous, started, settings, location, progress, status)
    shard_files = None
    embedded: list[str] = []
    rows = np.empty((0, run.spec.dim), np.float32)
    if run.todo:
        shard_files, embedded, rows = _embed(settings, location, run, progress, engine, status, report)
    if run.unchanged and not embedded:  # only files that failed again: the index is still current
        if shard_files:
            shard_files.clear()
        sync(location.saved_dir, location.metadata_csv, run.previous)
        return _finished(report, run.previous, started, settings, location, progress, status)
    status.phase = "writing"
    store = _commit(settings, location, run, embedded, rows)
    if shard_files:
        shard_files.clear()
    Thumbnails(location.saved_dir).prune(store.files())
    sync(location.saved_dir, location.metadata_csv, store)
    report.embedded, report.written = len(embedded), True
    return _finished(report, store, started, settings, location, progress, status)


def _plan(settings: Settings, location: Location, rebuild: bool) -> _Plan:
    """Scan the folder, settle the spec (`auto` keeps the collection's model and trunk) and sort
    the images into kept and to-embed; SpecMismatch for options the collection was not built with."""
    unlisted: list[tuple[str, str]] = []
    loaded, folded_seq = _load_previous(location)  # first: it tidies the folder (live_files)
    found = list_images(location.images_dir, unlisted)
    if loaded is not None and settings.model == "auto":  # `auto` keeps the model a collection has
        settings = settings.model_copy(update={"model": loaded.manifest.embedder.model})
    spec = EmbedderSpec.from_settings(settings)
    if loaded is not None and not rebuild and settings.precision == "auto":  # ... and its trunk
        spec = spec.model_copy(update={"quantization": loaded.manifest.embedder.quantization})
    previous = None if rebuild else loaded
    if previous is not None and previous.manifest.embedder != spec:
        raise spec_mismatch(location.name, len(previous), previous.manifest.embedder, spec)
    fingerprints = {path: (f.size, f.mtime_ns) for path, f in found.items()}
    old_files = previous.files() if previous else {}
    keep = [
        p
        for p in (previous.paths if previous else [])
        if p in fingerprints and tuple(old_files[p]) == fingerprints[p]
    ]
    keep_set = set(keep)
    return _Plan(
        spec=spec,
        previous=previous,
        fingerprints=fingerprints,
        keep=keep,
        todo=[p for p in found if p not in keep_set],
        ids_by_path={p: int(i) for p, i in zip(loaded.paths, loaded.ids)} if loaded else {},
        next_id=loaded.manifest.next_id if loaded else 0,
        folded_seq=folded_seq,
        unchanged=(
            previous is not None
            and len(keep) == len(previous.paths)
            and previous.manifest.whitening_requested == settings.whitening
        ),
        unlisted=unlisted,
    )


def _embed(
    settings: Settings,
    location: Location,
    run: _Plan,
    progress: bool,
    engine: Engine,
    status: Progress,
    report: IndexReport,
) -> tuple[ShardFiles, list[str], np.ndarray]:
    """Embed `run.todo` in shards, resuming from an interrupted run's shard files; the shard files,
    the paths embedded and their features (unreadable files go to `report.skipped`)."""
    spec = run.spec
    shards = plan(run.todo)

    def count(number: int) -> None:
        status.done += len(shards[number])

    shard_files = ShardFiles(location.saved_dir, run_key(spec, run.todo), on_write=count)
    finished = shard_files.done()
    pending = {n: paths for n, paths in enumerate(shards) if n not in finished}
    report.resumed = sum(len(shards[n]) for n in finished)
    status.phase, status.total, status.done = "embedding", len(run.todo), report.resumed
    if finished:
        done = (len(finished), len(shards), report.resumed)
        log.info("Resuming: %d of %d shards (%d images) were embedded by an interrupted run", *done)
    if pending:
        log.info(
            "Embedding %d images with %s%s (%s engine)",
            sum(map(len, pending.values())),
            spec.model,
            " int8" if spec.quantization == "int8" else "",
            engine.name,
        )
        engine.embed_shards(settings, spec, location, pending, shard_files, progress)
    results = [shard_files.read(n) for n in range(len(shards))]
    report.skipped += [s for r in results for s in r.skipped]
    embedded = [p for r in results for p in r.paths]
    rows = np.concatenate([np.empty((0, spec.dim), np.float32)] + [r.features for r in results])
    return shard_files, embedded, rows


def _commit(
    settings: Settings, location: Location, run: _Plan, embedded: list[str], rows: np.ndarray
) -> IndexStore:
    """Build the new index from the kept and the new rows, each path under its id, and commit it."""
    previous, keep = run.previous, run.keep
    old_rows = previous.features[[previous.row_of_path(p) for p in keep]] if previous and keep else rows[:0]
    paths = keep + embedded
    ids_by_path, next_id = dict(run.ids_by_path), run.next_id
    ids = []
    for path in paths:
        if path not in ids_by_path:
            ids_by_path[path], next_id = next_id, next_id + 1
        ids.append(ids_by_path[path])
    store = IndexStore.create(
        run.spec,
        np.concatenate([old_rows, rows]),
        paths,
        {p: run.fingerprints[p] for p in paths},
        ids=np.array(ids, dtype=np.int64),
        next_id=next_id,
        whitening_dims=settings.whitening,
        memory_limit=settings.index_memory_mb * 2**20,
        folded_seq=run.folded_seq,
    )
    store.save(location.saved_dir)
    _forget_folded(location.saved_dir, store)
    return store


def _finished(
    report: IndexReport,
    store: IndexStore | None,
    started: float,
    settings: Settings,
    location: Location,
    progress: bool,
    status: Progress,
) -> IndexReport:
    """The run's report, once the keypoint store holds every indexed image's (keypoint_fill.py)."""
    if store is not None and available():
        fill(location, store.files(), settings.max_image_pixels, settings.workers, progress, status)
    report.total, report.seconds = len(store) if store is not None else 0, time.perf_counter() - started
    return report
