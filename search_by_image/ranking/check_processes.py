"""A duplicates pass's checks in worker processes: every core busy, not the ~1.7 of 2 that its
threads kept (OpenCV releases the GIL, the Python and numpy around its calls mostly do not).

Each worker is a fresh interpreter (spawn: never a fork of a threaded server) with a `Verifier`
of the collection: it reads the keypoint store and the thumbnails, as the server's own checks do
(a missing thumbnail is made, atomically), and answers one pair at a time with its verdict. A
pair is sent with both images' paths and fingerprints (`Pair`), so a worker needs no copy of the
store. Spawned workers are this process' children: the CPU they used counts in its
RUSAGE_CHILDREN once they are shut down, as each pass does at its end. A worker ends with the
process it works for (`worker_processes.end_with`), even one killed by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from search_by_image.catalog.locations import Location
from search_by_image.devices import cpu_threads, single_threaded_blas
from search_by_image.index.live_store import LiveStore
from search_by_image.indexing.worker_processes import end_with
from search_by_image.ranking.verifier import PASS_IMAGES, Verifier

#: Pairs a pass must check for its checks to go to worker processes: starting them (a Python
#: importing numpy, OpenCV and the package, ~1 s of a core each) costs more than a few pairs'
#: checks (a pass carried over an add checks a handful: they stay on this process' threads).
MIN_PAIRS = 512

#: One image of a pair as a worker gets it: (id, path, fingerprint)
Image = tuple[int, str, tuple[int, int]]


def workers(setting: int) -> int:
    """The worker processes a pass uses for the `duplicates_workers` setting: 0 = one per core
    (1, the default: none, the pass's own threads)."""
    return setting or cpu_threads()


@dataclass(frozen=True)
class ProcessChecks:
    """Where a pass's checks may go: `workers` processes checking with a Verifier of `location`
    (`Verifier.is_copy`), each holding up to `held` images' keypoints while it runs."""

    location: Location
    max_image_pixels: int
    workers: int
    held: int

    @classmethod
    def of(cls, verifier: Verifier, store: LiveStore, setting: int) -> ProcessChecks | None:
        """The processes for a pass over `store` (None: the setting says one, on threads); the
        keypoints a pass keeps (`Verifier.holding`) shared out among them."""
        count = workers(setting)
        if count < 2:
            return None
        held = max(verifier.capacity, min(2 * len(store), PASS_IMAGES) // count)
        return cls(verifier.location, verifier.max_image_pixels, count, held)

    def started(self, store: LiveStore, ahead: int) -> Workers:
        """The workers for a pass over `store`, started now (the caller shuts them down)."""
        return Workers(self, store, ahead)


class Workers:
    """A pass's worker processes, each with a queue of its own: a pair goes to the worker that
    already holds one of its images (its keypoints, mirror and grey in that worker's caches,
    not extracted and decoded again in another), unless that one has more than `ahead` checks
    under way: then to the least busy. A pass hands out its pairs best first within runs of
    many images (pair_checks.BEST_FIRST_LINKS), so the images, and the work, spread over the
    workers."""

    def __init__(self, checks: ProcessChecks, store: LiveStore, ahead: int):
        self.store, self.ahead = store, ahead
        spawn = multiprocessing.get_context("spawn")  # never a fork of a threaded server
        start = (checks.location, checks.max_image_pixels, checks.held, os.getpid())
        self._pools = [
            ProcessPoolExecutor(1, mp_context=spawn, initializer=_start, initargs=start)
            for _ in range(checks.workers)
        ]
        self._running: list[set[Future[bool]]] = [set() for _ in self._pools]
        #: image id -> the worker that checked a pair with it first
        self._owner: dict[int, int] = {}

    def submit(self, a: int, b: int, try_mirror: bool) -> Future[bool]:
        """`Verifier.is_copy(store, a, b, try_mirror)` on one of the workers."""
        for running in self._running:
            running -= {future for future in running if future.done()}
        busy = [len(running) for running in self._running]
        owners = [self._owner[i] for i in (a, b) if i in self._owner]
        worker = next((w for w in owners if busy[w] <= self.ahead), busy.index(min(busy)))
        self._owner.setdefault(a, worker)
        self._owner.setdefault(b, worker)
        future = self._pools[worker].submit(is_copy, _image(self.store, a), _image(self.store, b), try_mirror)
        self._running[worker].add(future)
        return future

    def shutdown(self, cancel_futures: bool = False) -> None:
        """Every worker stopped, waited for (its CPU then counts in RUSAGE_CHILDREN)."""
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=cancel_futures)


def _image(store: LiveStore, image_id: int) -> Image:
    path = store.path_of(image_id)
    return image_id, path, store.fingerprint_of(path)


class _Pair:
    """The two images of a pair, read as `Verifier.is_copy` reads a store (`verifier.ImageFiles`)."""

    def __init__(self, *images: Image):
        self._paths = {image_id: path for image_id, path, _ in images}
        self._fingerprints = {path: fingerprint for _, path, fingerprint in images}

    def path_of(self, image_id: int) -> str:
        return self._paths[image_id]

    def fingerprint_of(self, path: str) -> tuple[int, int]:
        return self._fingerprints[path]


#: this worker's verifier (`_start`), holding its keypoints for the pass
_verifier: Verifier | None = None
_held = contextlib.ExitStack()


def _start(location: Location, max_image_pixels: int, held: int, caller: int) -> None:
    """A worker's start: its verifier, keeping `held` images' keypoints; ends with `caller`.
    Its BLAS and FAISS (the keypoints' matching) on one thread: a worker is a core already,
    and a team woken for a few milliseconds' work costs more than it saves (as for a search:
    devices.one_faiss_thread)."""
    import faiss  # the worker's, not the caller's import

    global _verifier
    end_with(caller)
    single_threaded_blas()
    faiss.omp_set_num_threads(1)
    _large_blocks_kept()
    _verifier = Verifier(location, max_image_pixels, top=0)
    _held.enter_context(_verifier.holding(held))


#: glibc's mallopt parameters: blocks from this size mapped and unmapped by themselves; the heap
#: trimmed past this much free at its top
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Bytes a worker's allocator keeps (`_large_blocks_kept`)
KEPT_BLOCK_BYTES = 64 << 20


def _large_blocks_kept() -> None:
    """A fresh process' allocator mapped each grey, flow and mask a check makes (0.2-2 MB) anew,
    and the kernel zeroed its pages every time: a quarter of a worker's CPU went to the system
    (5.3 of 41 s on 1,000 pairs; 1.3 s with this). Blocks up to KEPT_BLOCK_BYTES are reused from
    the heap instead (glibc; elsewhere nothing changes)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, 4 * KEPT_BLOCK_BYTES)


def is_copy(a: Image, b: Image, try_mirror: bool) -> bool:
    """In a worker: `Verifier.is_copy` of the two images."""
    if _verifier is None:
        raise RuntimeError("not a duplicates check worker")
    return _verifier.is_copy(_Pair(a, b), a[0], b[0], try_mirror)
