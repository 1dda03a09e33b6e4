"""The files the last indexer run could not read, kept beside the index so that the API and the
page can show them (path and reason), not only the indexer's log."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from search_by_image.layout import UNREADABLE_FILE


class UnreadableFile(BaseModel):
    path: str = Field(description="relative to the images folder")
    reason: str


class UnreadableFiles(BaseModel):
    checked: datetime | None = Field(None, description="when the last indexer run finished")
    files: list[UnreadableFile] = []


def record(saved_dir: Path, skipped: list[tuple[str, str]]) -> None:
    """Replace the list with this run's (atomically: a reader sees the old list or the new)."""
    report = UnreadableFiles(
        checked=datetime.now(UTC),
        files=[UnreadableFile(path=p, reason=r) for p, r in sorted(skipped)],
    )
    saved_dir.mkdir(parents=True, exist_ok=True)
    staged = saved_dir / f".{UNREADABLE_FILE}.tmp"
    staged.write_text(report.model_dump_json(indent=1))
    os.replace(staged, saved_dir / UNREADABLE_FILE)


def load(saved_dir: Path) -> UnreadableFiles:
    """The last run's list; empty when no run recorded one (or it cannot be read)."""
    try:
        return UnreadableFiles.model_validate_json((saved_dir / UNREADABLE_FILE).read_text())
    except (OSError, ValueError):
        return UnreadableFiles()
