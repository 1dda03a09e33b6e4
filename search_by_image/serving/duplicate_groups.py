"""A collection's duplicate groups: its duplicates pass (ranking/duplicate_pass.py) computed on a
thread of its own, with its progress, carried over live writes, and the groups of the last few
(threshold, scope) asked, kept until the index changes.

A whole pass takes minutes on a big collection (every image searched, its pairs checked): a
request waits PASS_WAIT_S for it, then is answered `DuplicatesPending` (202, with how far the
pass has got) while the pass goes on; the next request finds it further or done. A pass carried
over live writes takes a second or two and is waited for like any request.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Hashable

from search_by_image.errors import DuplicatesPending
from search_by_image.index.live_store import LiveStore
from search_by_image.ranking.check_processes import ProcessChecks
from search_by_image.ranking.duplicate_pass import DuplicatePass, Progress
from search_by_image.ranking.duplicates import Group
from search_by_image.ranking.verifier import Verifier

#: Groups of this many (threshold, scope) kept per index generation.
KEPT_THRESHOLDS = 8
#: Seconds a request waits for a pass before it is told how far the pass has got (202).
PASS_WAIT_S = 10.0
log = logging.getLogger(__name__)


class PassJob:
    """One pass under way on its thread: the store it is for, its progress, and its failure."""

    def __init__(self, store: LiveStore, run: Callable[[PassJob], None]):
        self.store = store
        self.progress = Progress(total=len(store))  # images to search, until the pass reports
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=run, args=(self,), name="duplicates-pass", daemon=True)


class DuplicateGroups:
    """The duplicate groups of one collection's stores (see the module docstring); `verifier`
    None: groups by scores alone. A whole pass's checks in `workers` processes (the
    `duplicates_workers` setting: 0 = one per core, 1 = on this process' threads)."""

    def __init__(self, name: str, verifier: Verifier | None, workers: int = 1):
        self.name = name
        self._verifier = verifier
        self._workers = workers
        self._lock = threading.Lock()
        self._pass: DuplicatePass | None = None
        self._job: PassJob | None = None
        #: (store version, threshold, scope) -> groups, the last KEPT_THRESHOLDS asked
        self._groups: dict[tuple[str, float | None, Hashable], list[Group]] = {}

    def groups(
        self,
        store: LiveStore,
        threshold: float | None,
        keep: Callable[[int, int], bool] | None = None,
        scope: Hashable = None,
        wait_s: float | None = PASS_WAIT_S,
    ) -> list[Group]:
        """The groups of `store` at `threshold` within `keep` (`scope` names it, for the cache);
        DuplicatesPending when its pass is not done within `wait_s` (None: however long)."""
        done = self._pass_for(store, wait_s)
        with self._lock:
            key = (done.store.version, threshold, scope)
            if key not in self._groups:
                if len(self._groups) >= KEPT_THRESHOLDS:
                    self._groups.pop(next(iter(self._groups)))
                checker = self._verifier
                check = None if checker is None else functools.partial(checker.is_copy, store)
                self._groups[key] = done.groups(threshold, keep, check)
            return self._groups[key]

    def _pass_for(self, store: LiveStore, wait_s: float | None) -> DuplicatePass:
        """The pass of `store`: the last one when it is for `store`, else the one under way (or
        started now), waited for until `wait_s` from now."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            with self._lock:
                if self._pass is not None and self._pass.store.version == store.version:
                    return self._pass
                if self._job is None:  # for `store`, from the last pass where it carries over
                    self._job = PassJob(store, self._run)
                    self._job.thread.start()
                job = self._job
            job.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if job.thread.is_alive():
                progress = job.progress
                raise DuplicatesPending(progress.phase, progress.done, progress.total)
            if job.error is not None:
                raise job.error

    def _run(self, job: PassJob) -> None:
        try:
            computed = self._computed(job.store, job.progress)
            with self._lock:
                self._pass, self._groups = computed, {}  # the groups of older stores dropped
        except BaseException as exc:  # noqa: BLE001 - handed to the requests waiting for it
            log.warning("Collection %s: the duplicates pass failed: %s", self.name, exc)
            job.error = exc
        finally:
            with self._lock:
                self._job = None

    def _computed(self, store: LiveStore, progress: Progress) -> DuplicatePass:
        """Neighbours and verified copies for `store`: the last pass carried over its live deletes
        and adds (a keep-one or an add searches only what changed), else computed whole. Local
        verification off: groups from scores alone."""
        last = self._pass
        if self._verifier is None:
            return (
                last.updated(store, None, progress=progress)
                if last
                else DuplicatePass.of(store, None, progress=progress)
            )
        check = functools.partial(self._verifier.is_copy, store)
        stored = functools.partial(self._verifier.preload, store)  # keypoints stored at indexing
        processes = ProcessChecks.of(self._verifier, store, self._workers)
        with self._verifier.holding(2 * len(store)):  # each image's (and mirror's) read once
            if last is not None:
                return last.updated(store, check, stored, progress, processes)
            return DuplicatePass.of(store, check, stored, progress, processes)
