"""Intent records for live adds and deletes: what a write is about to change, kept until it is done.

An add writes image files and CSV rows before it commits the index; a delete moves a file to the
trash and removes CSV rows. Killed (SIGKILL, power loss) or failing (a full disk) between those
steps, the leftovers used to stay: upload files and CSV rows that the next `with_faiss.py` run
indexed although no client was told they were added, or a trashed file whose image search still
returned. So before its first change a write records its plan in `saved/.pending.json`, with a
copy of the CSV as it was (`.pending.csv`). The CSV and the images usually live on another mount
than `saved/` (two volumes in the compose layout), so nothing here hard-links or renames across
folders: files are copied into the target's folder, then renamed there. The index commit is the
point of no return:

- not committed (the manifest's generation is still the one recorded): the write is undone -
  files it created removed, files it moved moved back, the CSV put back;
- committed: the write stands and is finished - a move not yet done (a delete killed mid-way)
  is done, so an acknowledged delete stays deleted, file included.

`settle` does this; the writer that failed calls it at once, and `disk.writer_lock` calls it
on entry (after rolling back a half-done commit), so the service and the indexer both clean up
after a crash before they change anything.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from pydantic import BaseModel

from search_by_image.layout import PENDING_FILE

log = logging.getLogger(__name__)

CSV_BACKUP = ".pending.csv"


class Plan(BaseModel):
    #: the index generation the write started from
    generation: str
    #: the metadata CSV it may change (None: no CSV)
    csv: Path | None = None
    csv_existed: bool = False
    #: files it creates (absent before it started)
    created: list[Path] = []
    #: files it moves: (from, to)
    moved: list[tuple[Path, Path]] = []


def begin(saved_dir: Path, plan: Plan) -> None:
    """Record `plan` durably before the write changes anything (the caller holds the writer lock)."""
    backup = saved_dir / CSV_BACKUP
    backup.unlink(missing_ok=True)
    if plan.csv is not None and plan.csv.is_file():
        copy_into(plan.csv, backup)
        plan = plan.model_copy(update={"csv_existed": True})
    staged = saved_dir / f".{PENDING_FILE}.tmp"
    try:
        with open(staged, "w") as out:
            out.write(plan.model_dump_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, saved_dir / PENDING_FILE)
    except BaseException:
        staged.unlink(missing_ok=True)
        backup.unlink(missing_ok=True)
        raise


def end(saved_dir: Path) -> None:
    """The write is complete: forget its plan."""
    (saved_dir / PENDING_FILE).unlink(missing_ok=True)
    (saved_dir / CSV_BACKUP).unlink(missing_ok=True)


def settle(saved_dir: Path, generation_now: str | None) -> str | None:
    """Undo or finish the write recorded in `saved_dir` (module docstring); what was done, if any."""
    try:
        plan = Plan.model_validate_json((saved_dir / PENDING_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # a plan cut short: the write had not started
        end(saved_dir)
        return None
    if generation_now == plan.generation:
        _undo(saved_dir, plan)
        outcome = "undone"
    else:
        for source, target in plan.moved:
            if source.exists():
                move(source, target)
        outcome = "finished"
    end(saved_dir)
    log.warning("A write interrupted in %s was %s", saved_dir, outcome)
    return outcome


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
    atomic copy (`copy_into`) and then the source removed (a crash in between leaves both)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_into(source, target)
        source.unlink()


def _undo(saved_dir: Path, plan: Plan) -> None:
    for path in plan.created:
        path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)
    for source, target in plan.moved:
        if target.exists():
            if source.exists():  # a copy across file systems done, the source not yet removed
                target.unlink()
            else:
                move(target, source)
        target.with_name(f".{target.name}.tmp").unlink(missing_ok=True)
    if plan.csv is not None:
        backup = saved_dir / CSV_BACKUP
        if plan.csv_existed and backup.is_file():
            copy_into(backup, plan.csv)
        elif not plan.csv_existed:
            plan.csv.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            plan.csv.with_name(f".{plan.csv.name}.tmp").unlink(missing_ok=True)
