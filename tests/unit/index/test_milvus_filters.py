"""Filters as Milvus expressions: the same checks as the embedded store, values that cannot
escape their literal, dates compared as the CSV's are."""

import json
from datetime import UTC, datetime

import pytest

from search_by_image.catalog.filters import parse_filters
from search_by_image.errors import FilterError
from search_by_image.index import milvus_filters
from search_by_image.index.vector_storage import StorageAddress

KINDS = {"category": "text", "width": "number", "taken": "date", "public": "bool"}


def expression(text: str) -> str:
    return milvus_filters.expression(parse_filters(text), KINDS)


def test_each_kind_of_condition_becomes_a_comparison_on_the_meta_field():
    assert expression('{"category": "animals"}') == '(meta["category"] == "animals")'
    assert expression('{"category": ["a", "b"]}') == '(meta["category"] == "a" or meta["category"] == "b")'
    assert expression('{"width": {"gte": 500, "lt": 1000}}') == (
        '(meta["width"] >= 500.0) and (meta["width"] < 1000.0)'
    )
    epoch = datetime(2019, 1, 1, tzinfo=UTC).timestamp()
    assert expression('{"taken": {"gte": "2019-01-01"}}') == f'(meta["taken"] >= {epoch!r})'
    assert expression('{"public": "true"}') == '(meta["public"] == true)'
    assert expression("") == ""


def test_a_value_cannot_end_its_literal_and_add_to_the_expression():
    hostile = 'x" or id >= 0 or meta["category"] == "'
    text = expression(json.dumps({"category": hostile}))
    literal = text.removeprefix('(meta["category"] == ').removesuffix(")")
    assert json.loads(literal) == hostile  # one string literal, the quotes inside escaped
    assert expression(json.dumps({"category": "back\\slash\nline"})).count('"') == 4


def test_the_same_errors_as_the_embedded_store():
    with pytest.raises(FilterError, match="unknown column"):
        expression('{"colour": "red"}')
    with pytest.raises(FilterError, match="numbers"):
        expression('{"width": "wide"}')
    with pytest.raises(FilterError, match="ranges need"):
        expression('{"category": {"gt": 1}}')


def test_stored_values_are_typed_by_their_column():
    assert milvus_filters.stored_value("640", "number") == 640.0
    assert milvus_filters.stored_value(float("nan"), "number") is None
    assert milvus_filters.stored_value("2019-01-01", "date") == datetime(2019, 1, 1, tzinfo=UTC).timestamp()
    assert milvus_filters.stored_value("True", "bool") is True


def test_a_store_address_is_milvus_or_the_saved_folder():
    assert StorageAddress.parse("") is None and StorageAddress.parse("local") is None
    address = StorageAddress.parse("milvus://db.example:19531")
    assert address is not None and address.uri == "http://db.example:19531"
    assert StorageAddress.parse("milvus://db").port == 19530  # type: ignore[union-attr]
    for bad in ("qdrant://x", "milvus://", "milvus://h:port"):
        with pytest.raises(ValueError, match="store"):
            StorageAddress.parse(bad)
