"""The image files live writes leave to be tidied: deleted images still in the images folder, and
uploads no logged add owns.

A delete is committed by its log row (live_log.py); its file is moved to the trash just after.
A process killed in between leaves the file in place, and an add killed between writing its
upload and committing its row leaves an upload file no row names. Neither is ever served (only
indexed paths are), but an indexer run scanning the folder would index them; so the service at
start-up and the indexer before its scan finish the moves (`finish_deletes`) and remove the
orphans (`remove_orphan_uploads`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from search_by_image.index.live_log import Change
from search_by_image.index.live_store import LiveStore

log = logging.getLogger(__name__)


def trashed_name(image_id: int, path: str) -> str:
    """The file name a deleted image gets in the trash folder."""
    return f"{image_id}-{Path(path).name}"


def finish_deletes(store: LiveStore, changes: Iterable[Change], images_dir: Path, trash_dir: Path) -> int:
    """Move to the trash the files of logged deletes still in the images folder (unless the same
    path was added again since); how many were moved."""
    moved = 0
    for change in changes:
        source = images_dir / change.path
        if change.deleted and store.id_of(change.path) is None and source.is_file():
            move(source, trash_dir / trashed_name(change.image_id, change.path))
            moved += 1
    if moved:
        log.warning("Moved %d deleted images to the trash after an interrupted delete", moved)
    return moved


def remove_orphan_uploads(store: LiveStore, images_dir: Path, uploads: str) -> int:
    """Remove files in the images folder's `uploads` folder that no indexed image or logged add
    names (an add killed before its commit, or its staged copy); how many."""
    folder = images_dir / uploads
    if not folder.is_dir():
        return 0
    removed = 0
    for file in folder.iterdir():
        if file.is_file() and store.id_of(f"{uploads}/{file.name}") is None:
            file.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.warning("Removed %d uploads that an interrupted add left behind", removed)
    return removed


def write_durably(target: Path, data: bytes) -> tuple[int, int]:
    """Write `data` to `target` atomically and fsynced (unless a file is there already: uploads
    are named by content), before a log row names it; its fingerprint (size, mtime_ns)."""
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # replicas may share the folder
        try:
            with open(staged, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
    info = target.stat()
    return info.st_size, info.st_mtime_ns


def copy_into(source: Path, target: Path) -> None:
    """Copy `source` over `target` atomically: staged beside `target` (its own file system),
    fsynced, then renamed, so it works across mounts and a crash leaves the old `target` whole."""
    staged = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, staged)
        with open(staged, "rb+") as out:
            os.fsync(out.fileno())
        os.replace(staged, target)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def move(source: Path, target: Path) -> None:
    """Move a file, across mounts too: a rename when both are on one file system, else an
    atomic copy (`copy_into`) and then the source removed (a crash in between leaves both,
    and `finish_deletes` removes the source later)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_into(source, target)
        source.unlink()
