"""What an add may write as metadata, checked before anything is written: no key that would
name the image, no value of the wrong kind for a typed column. The rows themselves go to the
collection's database (metadata_store.py)."""

from __future__ import annotations

import math
from typing import Any, Protocol

from search_by_image.catalog.csv_cells import is_number
from search_by_image.catalog.metadata import ISO_DATE, PATH_COLUMNS, Kind
from search_by_image.catalog.metadata_store import date_key
from search_by_image.errors import MetadataRejected


class Columns(Protocol):
    """What the checks read of a collection's metadata (metadata_view.MetadataView)."""

    @property
    def kinds(self) -> dict[str, Kind]: ...

    @property
    def key(self) -> str | None: ...


#: Longest column name an add may create.
MAX_COLUMN_NAME = 100


def check_rows(rows: list[dict[str, Any] | None], metadata: Columns) -> None:
    """MetadataRejected for a key that would name the image (any PATH_COLUMNS name, or the
    collection's image column) or a value of the wrong kind for a typed column: one value never
    retypes a column for everyone (`{"width": "unknown"}` on a number column)."""
    key, kinds = metadata.key, metadata.kinds
    reserved = {c.lower() for c in PATH_COLUMNS} | ({key.lower()} if key else set())
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
            if value is not None and not _fits(value, kinds.get(column, "text")):
                raise MetadataRejected(
                    column,
                    f"this column holds {_KIND_NAMES[kinds[column]]}; "
                    f"{value!r} is not one (null leaves it empty)",
                )


def _is_date(text: str) -> bool:
    try:
        date_key(text)
    except ValueError:
        return False
    return True


_KIND_NAMES = {"number": "numbers", "date": "ISO dates (YYYY-MM-DD)", "bool": "true/false"}


def _fits(value: Any, kind: Kind) -> bool:
    if kind == "number":
        return not isinstance(value, bool) and (
            isinstance(value, (int, float))
            and math.isfinite(value)
            or is_number(str(value))
            and math.isfinite(float(str(value)))
        )
    if kind == "date":
        return isinstance(value, str) and bool(ISO_DATE.fullmatch(value.strip())) and _is_date(value)
    if kind == "bool":
        return isinstance(value, bool) or str(value).lower() in ("true", "false")
    return True
