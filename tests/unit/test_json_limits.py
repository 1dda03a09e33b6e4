"""JSON form fields: measured as text before they are parsed, and parsed without recursing."""

import json

import pytest

from search_by_image.api.routes.collection_images import _rows_for
from search_by_image.catalog.filters import parse_filters
from search_by_image.errors import FilterError, InvalidField, JsonTooLarge
from search_by_image.json_limits import check_json_text


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


def test_the_deepest_legitimate_fields_pass_and_larger_ones_name_the_field():
    check_json_text(json.dumps([{"name": "Sideways", "age": 4}]), "metadata", 1000)
    check_json_text(json.dumps({"age": {"gte": 3, "lt": 10}}), "filters", 1000)
    assert parse_filters(json.dumps({"age": {"gte": 3, "lt": 10}, "tag": ["a", "b"]}))["tag"] == ["a", "b"]
    assert _rows_for(json.dumps([{"name": "Sideways", "age": 4}, {"name": "Rex"}]), 2)[1] == {"name": "Rex"}
    with pytest.raises(JsonTooLarge, match="metadata is 1002 bytes of JSON; the limit is 1000") as refused:
        check_json_text(json.dumps("x" * 1000), "metadata", 1000)
    assert refused.value.status == 422


@pytest.mark.parametrize("kind", ["list", "object"])
@pytest.mark.parametrize("depth", [3, 8, 9, 200, 201, 202, 1000, 5000])
def test_any_nesting_deeper_than_the_schemas_is_a_422_naming_the_field(depth, kind):
    with pytest.raises(FilterError) as filters:
        parse_filters(nested(depth, kind))
    with pytest.raises(InvalidField) as metadata:
        _rows_for(nested(depth, kind), 1)
    assert filters.value.status == metadata.value.status == 422
    assert filters.value.location[0] == "filters" and metadata.value.location == ("metadata",)
    if depth == 1000:  # past pydantic's parser's own limit: refused while parsing, not recursing
        assert "recursion limit exceeded" in filters.value.message
        assert "recursion limit exceeded" in metadata.value.message
