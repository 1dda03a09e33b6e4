"""Metadata filters: one JSON object, column -> condition, all conditions must hold.

    {"category": "animals"}                       equal to a value
    {"category": ["animals", "food"]}             one of several values
    {"width": {"gte": 500, "lt": 1000}}           a range: gt, gte, lt, lte (numbers or ISO dates)
    {"taken": {"gte": "2019-01-01", "lte": "2021-12-31"}}

The same syntax from curl (`-F 'filters={"category":"animals"}'`) and from the page. A filter is
checked against the collection's columns and their kinds before anything is searched, and every
problem names its column. A checked filter becomes one parameterised SQL condition over the
collection's metadata table (`where`, metadata_store.py: columns addressed by position, values
always bound as parameters), whose ids become a FAISS ID selector: the search itself skips what
does not match, so k results come back whenever k images match (cutting a top k afterwards
would return fewer).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import from_json

from search_by_image.catalog.metadata import Kind
from search_by_image.catalog.metadata_store import date_key, stored
from search_by_image.errors import FilterError
from search_by_image.json_limits import JsonTooLarge, check_json_text

Scalar = str | int | float | bool
MAX_FILTERS_BYTES = 16 * 1024


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gt: float | date | None = None
    gte: float | date | None = None
    lt: float | date | None = None
    lte: float | date | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Range:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        return self

    def bounds(self) -> dict[str, float | date]:
        return {op: v for op, v in self.model_dump().items() if v is not None}


Condition = Scalar | list[Scalar] | Range


def parse_filters(text: str | None) -> dict[str, Condition]:
    """The `filters` form field (JSON) as conditions; FilterError says what is wrong."""
    if text is None or not text.strip():
        return {}
    try:
        check_json_text(text, "filters", MAX_FILTERS_BYTES)
        raw = from_json(text)  # pydantic's parser: no RecursionError, whatever the nesting
    except JsonTooLarge as exc:
        raise FilterError(None, str(exc)) from None
    except ValueError as exc:
        raise FilterError(None, f"filters must be a JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise FilterError(None, 'filters must be a JSON object such as {"category": "animals"}')
    conditions: dict[str, Condition] = {}
    for column, value in raw.items():
        if isinstance(value, dict):
            try:
                conditions[column] = Range.model_validate(value)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                raise FilterError(
                    column,
                    f"{where + ': ' if where else ''}{problem['msg']} (a range takes gt, gte, lt, lte)",
                ) from None
        elif isinstance(value, list):
            if not value or not all(_is_scalar(v) for v in value):
                raise FilterError(column, "a list must hold one or more plain values")
            conditions[column] = value
        elif _is_scalar(value):
            conditions[column] = value
        else:
            raise FilterError(column, "expected a value, a list of values or a range object")
    return conditions


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def check_filters(conditions: dict[str, Condition], kinds: dict[str, Kind]) -> None:
    """Raise FilterError for an unknown column or a value of the wrong type; cheap, no data."""
    for column, condition in conditions.items():
        if column not in kinds:
            known = ", ".join(kinds) or "none (this collection has no metadata CSV)"
            raise FilterError(column, f"unknown column; columns: {known}")
        kind = kinds[column]
        values: list[Scalar] | list[float | date]
        if isinstance(condition, Range):
            if kind not in ("number", "date"):
                raise FilterError(column, f"ranges need a number or date column; this one is {kind}")
            values = list(condition.bounds().values())
        else:
            values = condition if isinstance(condition, list) else [condition]
        for value in values:
            _coerce(value, kind, column)


def where(conditions: dict[str, Condition], columns: dict[str, tuple[int, Kind]]) -> tuple[str, list[Any]]:
    """The SQL condition over `metadata_rows` that selects what every condition allows, and its
    parameters (FilterError first, for what `check_filters` refuses). `columns`: name ->
    (position, kind), as metadata_store.columns gives them."""
    check_filters(conditions, {name: kind for name, (_, kind) in columns.items()})
    clauses: list[str] = []
    params: list[Any] = []
    for column, condition in conditions.items():
        position, kind = columns[column]
        name = stored(position)
        if isinstance(condition, Range):
            for op, bound in condition.bounds().items():
                clauses.append(f"{name} {_OPERATORS[op]} ?")
                params.append(_coerce(bound, kind, column))
        else:
            wanted = condition if isinstance(condition, list) else [condition]
            clauses.append(f"{name} IN ({', '.join('?' * len(wanted))})")
            params.extend(_coerce(v, kind, column) for v in wanted)
    return " AND ".join(clauses) or "1", params


_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _coerce(value: Any, kind: Kind, column: str) -> Any:
    """`value` as the column's type, or a FilterError that says which type was expected."""
    if kind == "number":
        if isinstance(value, bool | date):
            raise FilterError(column, f"this column holds numbers; {value!r} is not one")
        try:
            return float(value)
        except ValueError:
            raise FilterError(column, f"this column holds numbers; {value!r} is not one") from None
    if kind == "date":
        try:
            return date_key(value)
        except ValueError:
            raise FilterError(
                column, f"this column holds dates; {value!r} is not an ISO date (YYYY-MM-DD)"
            ) from None
    if kind == "bool":
        text = str(value).lower()
        if text not in ("true", "false"):
            raise FilterError(column, f"this column holds true/false; {value!r} is neither")
        return int(text == "true")
    return str(value)
