"""Rewriting the metadata CSV for live adds and deletes: rows checked, appended, removed.

Every rewrite keeps the CSV's cells as text (hand-made formatting survives), replaces the file in
one rename, and neutralises would-be spreadsheet formulas (csv_cells.py). The join that reads it
is metadata.py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from search_by_image.catalog.csv_cells import is_number, neutralised
from search_by_image.catalog.metadata import ISO_DATE, PATH_COLUMNS, Kind, Metadata, image_column
from search_by_image.errors import MetadataRejected
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = LazyModule("pandas")


def _read_as_text(csv_path: Path, indexed: list[str]) -> tuple[pd.DataFrame, str]:
    """The CSV as text cells (so hand-made formatting survives a rewrite) and its image column."""
    if not csv_path.is_file():
        return pd.DataFrame(columns=["path"]), "path"
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if len(frame.columns) == 0:
        return pd.DataFrame(columns=["path"]), "path"
    return frame, image_column(frame, indexed)


def _write_atomically(frame: pd.DataFrame, csv_path: Path) -> None:
    """Replace the CSV in one rename; a failed write (a full disk) leaves no staged file."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    staged = csv_path.with_name(f".{csv_path.name}.tmp")
    try:
        frame.to_csv(staged, index=False)
        os.replace(staged, csv_path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def append_rows(csv_path: Path, rows: dict[str, dict[str, Any]], indexed: list[str]) -> None:
    """One CSV row per path (new columns are added), written atomically. A path's earlier rows
    are replaced, so a retried add never duplicates them. Cells a spreadsheet would run as a
    formula are neutralised (`neutralised`)."""
    if not rows:
        return
    frame, key = _read_as_text(csv_path, indexed)
    cells = frame[key].str.strip().str.replace("\\", "/", regex=False).str.removeprefix("./")
    frame = frame[~cells.isin(set(rows))]
    added = pd.DataFrame(
        [
            {
                **{
                    neutralised(str(k)): "" if v is None else neutralised(_text(v)) for k, v in values.items()
                },
                key: path,
            }
            for path, values in rows.items()
        ]
    )
    _write_atomically(pd.concat([frame, added], ignore_index=True).fillna(""), csv_path)


def remove_rows(csv_path: Path | None, path: str, indexed: list[str]) -> list[dict[str, str]]:
    """Remove the CSV rows that the join gives to `path`; returns them (for the trash)."""
    if csv_path is None or not csv_path.is_file():
        return []
    frame, key = _read_as_text(csv_path, indexed)
    name = PurePosixPath(path).name
    unique_name = sum(PurePosixPath(p).name == name for p in indexed) == 1
    cells = frame[key].str.strip().str.replace("\\", "/", regex=False).str.removeprefix("./")
    gone = (cells == path) | ((cells == name) & unique_name)
    if not gone.any():
        return []
    _write_atomically(frame[~gone], csv_path)
    return frame[gone].to_dict(orient="records")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: Longest column name an add may create.
MAX_COLUMN_NAME = 100


def check_rows(rows: list[dict[str, Any] | None], metadata: Metadata) -> None:
    """MetadataRejected for a key that would name the image (any PATH_COLUMNS name, or the
    collection's image column) or a value of the wrong kind for a typed column: one value never
    retypes a column for everyone (`{"width": "unknown"}` on a number column)."""
    reserved = {c.lower() for c in PATH_COLUMNS} | ({metadata.key.lower()} if metadata.key else set())
    for row in rows:
        for column, value in (row or {}).items():
            if column.lower() in reserved:
                raise MetadataRejected(
                    column,
                    "this name is reserved for the column that names the "
                    "image; the service writes the image's path itself",
                )
            if not column.strip() or len(column) > MAX_COLUMN_NAME:
                raise MetadataRejected(
                    column[:MAX_COLUMN_NAME], f"column names must be 1-{MAX_COLUMN_NAME} characters"
                )
            if value is not None and not _fits(value, metadata.kinds.get(column, "text")):
                raise MetadataRejected(
                    column,
                    f"this column holds {_KIND_NAMES[metadata.kinds[column]]}; "
                    f"{value!r} is not one (null leaves it empty)",
                )


_KIND_NAMES = {"number": "numbers", "date": "ISO dates (YYYY-MM-DD)", "bool": "true/false"}


def _fits(value: Any, kind: Kind) -> bool:
    if kind == "number":
        return not isinstance(value, bool) and (
            isinstance(value, (int, float)) and math.isfinite(value) or is_number(str(value))
        )
    if kind == "date":
        return isinstance(value, str) and bool(ISO_DATE.fullmatch(value.strip()))
    if kind == "bool":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    return True
