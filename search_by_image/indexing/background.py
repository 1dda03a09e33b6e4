"""Indexing inside the service: every collection brought in step with its images folder by a
background thread when the service starts (`SBI_INDEX_ON_START`, what the container does).

The service answers at once: it serves what is already indexed, `/health` says which collection is
being indexed and how far the run has got, and each index is served as soon as its run commits.
Before, the container ran `with_faiss.py` ahead of uvicorn, so a first start with thousands of
photos failed its health check long before it could answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from search_by_image.catalog import locations
from search_by_image.errors import IndexBusy
from search_by_image.indexing.indexer import update_index
from search_by_image.indexing.report import Phase, Progress
from search_by_image.settings import Settings

log = logging.getLogger(__name__)

#: An API write holding a collection when its run starts: tries, seconds apart.
BUSY_TRIES, BUSY_WAIT_S = 5, 2.0


class IndexingStatus(BaseModel):
    """A background run's progress, as /health shows it."""

    state: Literal["running", "done", "failed"]
    collection: str | None = Field(None, description="the collection being indexed now")
    phase: Phase | None = None
    done: int = Field(0, description="images done so far in this phase (embedded; keypoints computed)")
    total: int = Field(0, description="images this phase of the collection's run has to do")
    percent: float | None = None
    started: datetime
    finished: datetime | None = None
    detail: str | None = Field(None, description="why a collection could not be indexed")


class BackgroundIndexer:
    """Runs the incremental indexer over every collection, once, in a daemon thread."""

    def __init__(
        self,
        settings: Settings,
        on_indexed: Callable[[], None],
        locations: dict[str, locations.Location] | None = None,
    ):
        """`locations`: the collections to index (default: every one; watch mode passes those
        whose folder changed)."""
        self.settings = settings
        self.locations = locations
        self.on_indexed = on_indexed  # the service's refresh: serve each new index at once
        self.progress = Progress()
        self.collection: str | None = None
        self.state: str = "running"
        self.detail: str | None = None
        #: why a collection could not be indexed, by name
        self.problems: dict[str, str] = {}
        self.started = datetime.now(UTC)
        self.finished: datetime | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-indexer", daemon=True)

    def start(self) -> BackgroundIndexer:
        self._thread.start()
        return self

    def wait(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        """No further collection or retry is started; a run under way finishes (its shards make
        an interrupted one resumable anyway)."""
        self._stopping.set()

    def _run(self) -> None:
        for name, location in (self.locations or locations.discover(self.settings)).items():
            if self._stopping.is_set():
                break
            self.collection, self.progress = name, Progress()
            problem = self._index(location)
            if problem:
                self.problems[name] = problem
                log.error("Indexing collection %s failed: %s", name, problem)
            self.on_indexed()
        self.collection, self.finished = None, datetime.now(UTC)
        self.state = "failed" if self.problems else "done"
        self.detail = "; ".join(f"{name}: {problem}" for name, problem in self.problems.items()) or None

    def _index(self, location: locations.Location) -> str | None:
        """One collection's run; the reason it failed, or None."""
        for attempt in range(BUSY_TRIES):
            try:
                report = update_index(self.settings, location, progress=False, status=self.progress)
            except IndexBusy as exc:
                if attempt == BUSY_TRIES - 1 or self._stopping.wait(BUSY_WAIT_S):
                    return str(exc)
            except PermissionError as exc:
                return (
                    locations.unwritable(location.saved_dir)
                    or locations.unwritable(location.images_dir)
                    or str(exc)
                )
            except Exception as exc:  # reported in /health, the service keeps serving
                log.exception("Indexing collection %s", location.name)
                return f"{type(exc).__name__}: {exc}"
            else:
                log.info("Collection %s: %s", location.name, report.summary())
                return None
        return None

    def status(self) -> IndexingStatus:
        progress = self.progress
        running = self.state == "running"
        return IndexingStatus(
            state=self.state,
            collection=self.collection,
            phase=progress.phase if running else None,
            done=progress.done if running else 0,
            total=progress.total if running else 0,
            percent=round(100 * progress.done / progress.total, 1) if running and progress.total else None,
            started=self.started,
            finished=self.finished,
            detail=self.detail,
        )
