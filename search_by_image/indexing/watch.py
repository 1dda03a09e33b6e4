"""Watch mode: collections kept in step with their images folders as files appear, change or go
away (`python with_faiss.py --watch`; `SBI_WATCH` in the service).

watchfiles (the OS's own notifications: inotify, FSEvents, ReadDirectoryChangesW) reports the
changes; a burst (a hundred photos copied in, a file written in many chunks) is grouped until the
folder has been quiet for `watch_quiet_ms`, then each collection that changed goes through the
incremental indexer, exactly as if `python with_faiss.py` had been run: only new and changed files
are embedded, and deleted ones are dropped. A file caught half-written is skipped as unreadable by
that run and embedded by the next, which its last write triggers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from search_by_image.catalog.locations import Location
from search_by_image.indexing.image_folder import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

#: How often the set of watched folders is compared with the collections (new named ones).
RESCAN_MS = 5_000
#: Longest a continuous burst of changes is grouped before the collection is indexed anyway.
MAX_GROUP_MS = 60_000


def relevant(path: str) -> bool:
    """An image file, or something without a suffix (a folder moved in or out), not hidden."""
    name = Path(path).name
    if name.startswith("."):
        return False
    suffix = Path(name).suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix == ""


def changed_collections(paths: Iterable[str], folders: dict[Path, Location]) -> list[Location]:
    """The collections whose folder holds one of `paths` (hidden folders inside excluded), in the
    order of `folders`."""
    hit: set[Path] = set()
    for path in map(Path, paths):
        for folder in folders:
            if path.is_relative_to(folder):
                if not any(part.startswith(".") for part in path.relative_to(folder).parts):
                    hit.add(folder)
                break
    return [location for folder, location in folders.items() if folder in hit]


def follow(
    collections: Callable[[], dict[str, Location]],
    on_change: Callable[[Location], None],
    quiet_ms: int,
    stop: threading.Event,
) -> None:
    """Call `on_change(location)` for each collection whose images folder changed, after
    `quiet_ms` without further changes, until `stop` is set. `collections()` is read again every
    few seconds, so folders of collections created meanwhile are watched too."""
    import watchfiles

    while not stop.is_set():
        folders = {loc.images_dir.resolve(): loc for loc in collections().values() if loc.images_dir.is_dir()}
        if not folders:
            stop.wait(RESCAN_MS / 1e3)
            continue
        log.info("Watching %s", ", ".join(str(folder) for folder in folders))
        for changes in watchfiles.watch(
            *folders,
            watch_filter=lambda _, path: relevant(path),
            step=quiet_ms,
            debounce=max(quiet_ms, MAX_GROUP_MS),
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=RESCAN_MS,
        ):
            for location in changed_collections((path for _, path in changes), folders):
                on_change(location)
            current = {loc.images_dir.resolve() for loc in collections().values() if loc.images_dir.is_dir()}
            if current != set(folders):
                break
