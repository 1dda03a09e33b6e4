"""The optional metadata CSV: one column names the image, every other column is returned as-is.

The CSV is joined by path when it is imported into the collection's database
(metadata_import.py: at indexing, and when the file changes), not baked into the index, so
editing it needs no re-embedding. Problems are reported, never fatal: a CSV is often maintained
by hand. Live adds and deletes write the database only (metadata_store.py); the CSV stays as the
user wrote it.

Besides the JSON rows returned with results, the join keeps a typed table aligned with the index
rows: each column is a number, a date (ISO `YYYY-MM-DD` text), a boolean or text.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from search_by_image.catalog.csv_cells import neutralised, restored_frame
from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = LazyModule("pandas")  # imported by the thread that loads the collections, not at start-up

log = logging.getLogger(__name__)

#: Column names that usually hold the image file, in order of preference.
PATH_COLUMNS = ("path", "image_path", "image", "file", "filename", "file_name", "image_name")
#: Text columns whose every value looks like this are dates (filterable by range).
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
#: A text column with at most this many distinct values gets a drop-down on the page.
MAX_CHOICES = 30

Kind = Literal["number", "date", "bool", "text"]


class ColumnInfo(BaseModel):
    name: str
    kind: Kind
    #: the distinct values of a text column with few of them (for a drop-down), else None
    values: list[str] | None = None
    min: float | str | None = None
    max: float | str | None = None


@dataclass
class Metadata:
    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: CSV rows whose file is not among the indexed images
    unmatched: list[str] = field(default_factory=list)
    #: indexed images without a CSV row
    missing: list[str] = field(default_factory=list)
    #: typed values, one row per indexed path in index order (NA where the CSV has none)
    table: pd.DataFrame | None = None
    kinds: dict[str, Kind] = field(default_factory=dict)
    #: the column that names the image (image_column), None without a CSV
    key: str | None = None

    def for_path(self, path: str) -> dict[str, Any]:
        return self.rows.get(path, {})

    def problems(self) -> list[str]:
        lines = []
        if self.unmatched:
            lines.append(
                f"{len(self.unmatched)} CSV rows name files that are not indexed: " + _sample(self.unmatched)
            )
        if self.missing:
            lines.append(f"{len(self.missing)} indexed images have no CSV row: " + _sample(self.missing))
        return lines


def _sample(items: list[str], shown: int = 5) -> str:
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _unique_names(paths: list[str]) -> dict[str, str | None]:
    """File name -> its indexed path, or None when several indexed files share the name."""
    by_name: dict[str, str | None] = {}
    for path in paths:
        name = PurePosixPath(path).name
        by_name[name] = None if name in by_name else path  # ambiguous names match nothing
    return by_name


def image_column(frame: pd.DataFrame, indexed: list[str]) -> str:
    """Which column names the image: the one rule, used to read, append and remove rows.

    The first of PATH_COLUMNS (in that order of preference, any case) that is a column; else the
    column whose cells match the most indexed paths or unique file names (the leftmost on a tie).
    An add can never move the role to another column: keys that are PATH_COLUMNS names are refused
    (`check_rows`), and the content rule only ever counts indexed paths, which a new column's
    cells are not.
    """
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    for candidate in PATH_COLUMNS:
        if candidate in by_lower:
            return by_lower[candidate]
    paths = set(indexed)
    names = {name for name, path in _unique_names(indexed).items() if path}

    def hits(column: str) -> int:
        values = frame[column].astype(str)
        return int(values.isin(paths).sum() + values.isin(names).sum())

    return str(max(frame.columns, key=hits))


def _kind(column: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    values = column.dropna().astype(str)
    if len(values) and values.str.fullmatch(ISO_DATE).all():
        return "date"
    return "text"


def _typed(column: pd.Series, kind: Kind) -> pd.Series:
    if kind == "date":
        return pd.to_datetime(column, format="ISO8601", errors="coerce")
    if kind == "text":
        return column.astype("string")
    return column


def load_metadata(
    csv_path: Path | None, paths: list[str], added: Mapping[str, Mapping[str, Any]] | None = None
) -> Metadata:
    """Join `csv_path` to the indexed `paths` by relative path, or by file name when unique.

    `added`: rows written through the API (path -> values), joined as if the CSV held them
    (the CSV's own row wins for a path it names), so columns are typed over both."""
    frame = _read(csv_path)
    if added:
        frame = _with_added(csv_path, frame, paths, added)
    if frame is None or frame.empty or len(frame.columns) == 0:
        return Metadata()
    return _join(restored_frame(frame), paths)


def _read(csv_path: Path | str | io.StringIO | None) -> pd.DataFrame | None:
    if csv_path is None or (not isinstance(csv_path, io.StringIO) and not Path(csv_path).is_file()):
        return None
    try:
        return pd.read_csv(csv_path, dtype_backend="numpy_nullable")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        log.warning("Ignoring metadata %s: %s", csv_path, exc)
        return None


def _with_added(
    csv_path: Path | None,
    frame: pd.DataFrame | None,
    paths: list[str],
    added: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame | None:
    """The CSV's text cells with the `added` rows appended (for paths it does not name), read
    again as one CSV: the same typing rules as if those rows had been written to the file."""
    named = (
        set(_join(restored_frame(frame), paths).rows) if frame is not None and len(frame.columns) else set()
    )
    extra = {path: values for path, values in added.items() if path not in named}
    if not extra:
        return frame
    text = (
        pd.DataFrame(columns=["path"])
        if frame is None
        else pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    )
    key = image_column(text, paths) if len(text) else str(text.columns[0])
    rows = [
        {**{neutralised(k): "" if v is None else neutralised(_cell(v)) for k, v in values.items()}, key: path}
        for path, values in extra.items()
    ]
    buffer = io.StringIO()
    pd.concat([text, pd.DataFrame(rows)], ignore_index=True).fillna("").to_csv(buffer, index=False)
    buffer.seek(0)
    return _read(buffer)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _join(frame: pd.DataFrame, paths: list[str]) -> Metadata:
    indexed = set(paths)
    by_name = _unique_names(paths)
    key = image_column(frame, paths)
    columns = [str(c) for c in frame.columns if c != key]
    metadata = Metadata(columns=columns, key=key)
    position = {path: row for row, path in enumerate(paths)}
    matched: dict[int, int] = {}  # index row -> CSV record (the last one wins)
    for number, record in enumerate(frame.astype(object).to_dict(orient="records")):
        raw = str(record.pop(key)).strip().replace("\\", "/").removeprefix("./")
        path = raw if raw in indexed else by_name.get(PurePosixPath(raw).name)
        if path is None:
            metadata.unmatched.append(raw)
            continue
        metadata.rows[path] = {str(k): _json_value(v) for k, v in record.items()}
        matched[position[path]] = number
    metadata.missing = [p for p in paths if p not in metadata.rows]
    values = frame.drop(columns=key).iloc[list(matched.values())]
    values.index = list(matched.keys())
    values.columns = columns
    values = values.reindex(range(len(paths)))
    metadata.kinds = {str(c): _kind(frame[c]) for c in frame.columns if c != key}
    metadata.table = pd.DataFrame(
        {c: _typed(values[c], metadata.kinds[c]) for c in columns}, index=values.index
    )
    return metadata
