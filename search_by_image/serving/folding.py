"""Folding live writes into the saved index, in the background, once they are many.

Live writes are logged beside the saved index (index/live_log.py) and laid over it at search time
(index/live_store.py), which costs a little per write kept. Past a threshold (setting fold_rows,
or fold_fraction of the index, from MIN_FOLD rows) a thread writes a new base holding them:

1. with the fold lock (`.fold.lock`, one fold per saved folder across worker processes), the
   current snapshot's store is folded in memory and its files written under `.fold.*` names,
   while writes and searches go on;
2. the writer lock is taken for the renames only (disk.commit's `locked`), and the fold is
   dropped if the base changed meanwhile (an indexer run);
3. the folded rows are removed from the log. A crash before that leaves rows at or below the new
   manifest's `folded_seq`, which loads ignore and the next fold removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from search_by_image.catalog.database import transaction
from search_by_image.errors import IndexBusy
from search_by_image.index import disk, live_log
from search_by_image.index.disk import committed_generation, writer_lock
from search_by_image.index.live_store import LiveStore

log = logging.getLogger(__name__)

#: A delta below this many rows is never folded: scanning it costs well under a millisecond.
MIN_FOLD = 1_000
FOLD_LOCK = ".fold.lock"
STAGED_PREFIX = ".fold."
#: How long the renames wait for another writer before the fold gives up (and retries later).
SWAP_WAIT_S = 30.0


class Superseded(Exception):
    """The base was rewritten (an indexer run) while a fold was being written."""


def due(store: LiveStore, fold_rows: int, fold_fraction: float) -> bool:
    """Whether `store`'s delta is past the threshold (module docstring)."""
    threshold = min(fold_rows, max(MIN_FOLD, int(fold_fraction * len(store.base))))
    return store.delta_size >= threshold


@contextlib.contextmanager
def fold_lock(saved_dir: Path) -> Iterator[bool]:
    """The fold lock if free (True), else False: another process is folding."""
    with open(saved_dir / FOLD_LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fold(saved_dir: Path, store: LiveStore) -> bool:
    """Write `store` (base and delta) as the new base, then forget the rows it holds; False when
    another process is folding or the base changed meanwhile."""
    with fold_lock(saved_dir) as mine:
        if not mine:
            return False
        for stale in saved_dir.glob(f"{STAGED_PREFIX}*.tmp"):  # a fold killed while writing
            stale.unlink(missing_ok=True)
        folded = store.folded()
        generation = store.manifest.generation

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            with writer_lock(saved_dir, wait=SWAP_WAIT_S):
                if committed_generation(saved_dir) != generation:
                    raise Superseded
                yield

        files = disk.SavedFiles(
            folded.manifest,
            folded.index,
            folded.features,
            folded.paths,
            folded.ids,
            folded.fingerprints,
            folded.whitening,
        )
        try:
            disk.commit(saved_dir, files, locked=locked, staged_prefix=STAGED_PREFIX)
        except (Superseded, IndexBusy):
            log.info("Fold of %s dropped: the index was rewritten or busy meanwhile", saved_dir)
            return False
        conn = live_log.open_log(saved_dir)  # its own: the writers' is theirs
        try:
            with transaction(conn):
                live_log.remove_folded(conn, folded.manifest.folded_seq)
        finally:
            conn.close()
        log.info("Folded %d live writes into the index of %s", store.delta_size, saved_dir)
        return True


class Folder:
    """Starts at most one background fold at a time for a collection."""

    def __init__(self) -> None:
        self._running = threading.Lock()

    def start(self, run: Callable[[], object]) -> bool:
        """Run `run` in a daemon thread unless a fold is running; whether one started."""
        if not self._running.acquire(blocking=False):
            return False

        def body() -> None:
            try:
                run()
            except Exception:
                log.exception("A background fold failed; the live writes stay logged")
            finally:
                self._running.release()

        threading.Thread(target=body, name="fold", daemon=True).start()
        return True
