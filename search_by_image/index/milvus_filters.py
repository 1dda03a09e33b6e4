"""Our metadata filters (catalog/filters.py) as a Milvus boolean expression, filtered in the search.

A collection's metadata columns are stored in one JSON field, `meta`, with each value typed by its
column's kind: numbers as numbers, dates as seconds since the epoch (UTC), booleans as booleans,
text as text. A filter is checked against the kinds first (the same FilterError as the embedded
store), then written as `meta["column"] == value`, `meta["column"] in [...]`, ranges as
comparisons, joined with `and`. Milvus 2.3 has no expression templates, so every name and text
value is written as a JSON string literal (quotes, backslashes and control characters escaped):
nothing a user sends can end the literal and add to the expression.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from search_by_image.catalog.filters import Condition, Range, check_filters
from search_by_image.catalog.metadata import Kind
from search_by_image.errors import FilterError

#: the JSON field holding an image's metadata columns
META_FIELD = "meta"
_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def literal(text: str) -> str:
    """A Milvus string literal for `text`: double-quoted, every quote, backslash and control
    character escaped (JSON's escaping, which Milvus's grammar reads the same way)."""
    return json.dumps(text, ensure_ascii=False)


def stored_value(value: Any, kind: Kind) -> Any:
    """A metadata cell as the `meta` field holds it; None (absent) for an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "number":
        return float(value)
    if kind == "date":
        when = value if isinstance(value, datetime) else _as_datetime(value)
        return None if when is None else _epoch(when)
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    return str(value)


def expression(conditions: Mapping[str, Condition], kinds: Mapping[str, Kind]) -> str:
    """The filter as one expression ("" without conditions); FilterError as the embedded store
    gives it for an unknown column or a value of the wrong kind."""
    check_filters(dict(conditions), dict(kinds))
    parts = []
    for column, condition in conditions.items():
        kind = kinds[column]
        field = f"{META_FIELD}[{literal(column)}]"
        if isinstance(condition, Range):
            for op, bound in condition.bounds().items():
                parts.append(f"{field} {_OPERATORS[op]} {_value(bound, kind, column)}")
        elif isinstance(condition, list):  # "or", not "in": milvus-lite takes no "in" on a JSON key
            either = " or ".join(f"{field} == {_value(v, kind, column)}" for v in condition)
            parts.append(either or "id < 0")
        else:
            parts.append(f"{field} == {_value(condition, kind, column)}")
    return " and ".join(f"({part})" for part in parts)


def excluding(ids: list[int]) -> str:
    """An expression leaving out these ids ("" for none)."""
    return f"id not in [{', '.join(str(int(i)) for i in ids)}]" if ids else ""


def both(*expressions: str) -> str:
    return " and ".join(f"({e})" for e in expressions if e)


def _value(value: Any, kind: Kind, column: str) -> str:
    """One value of a condition as a literal of the column's stored type."""
    if kind == "number":
        number = float(value)
        if not math.isfinite(number):
            raise FilterError(column, f"{value!r} is not a finite number")
        return repr(number)
    if kind == "date":
        when = _as_datetime(value)
        if when is None:
            raise FilterError(column, f"this column holds dates; {value!r} is not an ISO date (YYYY-MM-DD)")
        return repr(_epoch(when))
    if kind == "bool":
        return "true" if str(value).lower() == "true" else "false"
    return literal(str(value))


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _epoch(when: datetime) -> float:
    """Seconds since the epoch, naive times read as UTC (as the CSV's dates are compared)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
