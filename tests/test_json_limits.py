"""JSON form fields are measured as text before they are parsed: size and nesting depth."""

import json

import pytest

from search_by_image.errors import JsonTooLarge
from search_by_image.json_limits import MAX_DEPTH, check_json_text, nesting_depth


def test_depth_counts_objects_and_arrays_but_not_brackets_inside_strings():
    assert nesting_depth('{"a": 1}') == 1
    assert nesting_depth('[{"name": "Rex", "tags": ["dog"]}]') == 3
    assert nesting_depth('{"note": "[[[[{{{{"}') == 1
    assert nesting_depth(r'{"note": "a \"quoted\" [bracket"}') == 1
    assert nesting_depth("42") == 0


def test_the_deepest_legitimate_fields_pass_and_deeper_or_larger_ones_name_the_field():
    check_json_text(json.dumps([{"name": "Sideways", "age": 4}]), "metadata", 1000)
    check_json_text(json.dumps({"age": {"gte": 3, "lt": 10}}), "filters", 1000)
    with pytest.raises(JsonTooLarge, match=f"filters is nested more than {MAX_DEPTH} levels deep"):
        check_json_text("[" * 5000 + "]" * 5000, "filters", 1_000_000)
    with pytest.raises(JsonTooLarge, match="metadata is 1002 bytes of JSON; the limit is 1000") as refused:
        check_json_text(json.dumps("x" * 1000), "metadata", 1000)
    assert refused.value.status == 422
