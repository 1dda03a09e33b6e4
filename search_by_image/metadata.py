"""The optional metadata CSV: one column names the image, every other column is returned as-is.

The CSV is joined by path at load time (not baked into the index), so editing it needs no
re-embedding. Problems are reported, never fatal: a CSV is often maintained by hand.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

#: Column names that usually hold the image file, in order of preference.
PATH_COLUMNS = ("path", "image_path", "image", "file", "filename", "file_name", "image_name")


@dataclass
class Metadata:
    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: CSV rows whose file is not among the indexed images
    unmatched: list[str] = field(default_factory=list)
    #: indexed images without a CSV row
    missing: list[str] = field(default_factory=list)

    def for_path(self, path: str) -> dict[str, Any]:
        return self.rows.get(path, {})

    def problems(self) -> list[str]:
        lines = []
        if self.unmatched:
            lines.append(f"{len(self.unmatched)} CSV rows name files that are not indexed: "
                         + _sample(self.unmatched))
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


def _path_column(frame: pd.DataFrame, paths: set[str], names: set[str]) -> str:
    by_lower = {str(c).lower(): c for c in frame.columns}
    for candidate in PATH_COLUMNS:
        if candidate in by_lower:
            return by_lower[candidate]

    def hits(column: str) -> int:
        values = frame[column].astype(str)
        return int(values.isin(paths).sum() + values.isin(names).sum())

    return max(frame.columns, key=hits)


def load_metadata(csv_path: Path | None, paths: list[str]) -> Metadata:
    """Join `csv_path` to the indexed `paths` by relative path, or by file name when unique."""
    if csv_path is None or not csv_path.is_file():
        return Metadata()
    try:
        frame = pd.read_csv(csv_path, dtype_backend="numpy_nullable")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        log.warning("Ignoring metadata %s: %s", csv_path, exc)
        return Metadata()
    if frame.empty or len(frame.columns) == 0:
        return Metadata()
    indexed = set(paths)
    by_name: dict[str, str | None] = {}
    for path in paths:
        name = PurePosixPath(path).name
        by_name[name] = None if name in by_name else path  # ambiguous names match nothing
    key = _path_column(frame, indexed, {n for n, p in by_name.items() if p})
    columns = [str(c) for c in frame.columns if c != key]
    metadata = Metadata(columns=columns)
    for record in frame.astype(object).to_dict(orient="records"):
        raw = str(record.pop(key)).strip().replace("\\", "/").removeprefix("./")
        path = raw if raw in indexed else by_name.get(PurePosixPath(raw).name)
        if path is None:
            metadata.unmatched.append(raw)
            continue
        metadata.rows[path] = {str(k): _json_value(v) for k, v in record.items()}
    metadata.missing = [p for p in paths if p not in metadata.rows]
    return metadata
