"""Metadata filters: the syntax, the type checks that name their column, and the row masks."""

import numpy as np
import pytest

from search_by_image.catalog.filters import FilterError, Range, matching_rows, parse_filters
from search_by_image.catalog.metadata import load_metadata

CSV = """path,category,price,taken,featured,note
a.jpg,shoes,50,2019-05-01,true,x
b.jpg,shoes,150,2020-07-10,false,y
c.jpg,bags,80,2021-12-31,true,
d.jpg,bags,,2022-01-02,false,z
"""
PATHS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]  # e.jpg has no CSV row


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    csv = tmp_path_factory.mktemp("filters") / "data.csv"
    csv.write_text(CSV)
    return load_metadata(csv, PATHS)


def rows(metadata, text: str) -> list[str]:
    mask = matching_rows(parse_filters(text), metadata, len(PATHS))
    return [p for p, hit in zip(PATHS, mask) if hit]


def test_column_kinds_are_inferred(metadata):
    assert metadata.kinds == {
        "category": "text",
        "price": "number",
        "taken": "date",
        "featured": "bool",
        "note": "text",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"category": "shoes"}', ["a.jpg", "b.jpg"]),
        ('{"category": ["bags", "hats"]}', ["c.jpg", "d.jpg"]),
        ('{"price": {"lt": 100}}', ["a.jpg", "c.jpg"]),
        ('{"price": 150}', ["b.jpg"]),
        ('{"price": {"gte": 50, "lte": 80}, "category": "bags"}', ["c.jpg"]),
        ('{"taken": {"gte": "2020-01-01", "lte": "2021-12-31"}}', ["b.jpg", "c.jpg"]),
        ('{"featured": true}', ["a.jpg", "c.jpg"]),
        ("{}", PATHS),
        ("", PATHS),
    ],
)
def test_filters_select_the_matching_rows(metadata, text, expected):
    assert rows(metadata, text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"colour": "red"}', "colour: unknown column; columns: category, price"),
        ('{"price": "cheap"}', "price: this column holds numbers; 'cheap' is not one"),
        ('{"price": {"lt": "cheap"}}', "price: "),
        ('{"taken": {"gte": "last year"}}', "taken: "),
        ('{"taken": "yesterday"}', "taken: this column holds dates"),
        ('{"category": {"lt": 3}}', "category: ranges need a number or date column"),
        ('{"price": {"between": [1, 2]}}', "price: between: Extra inputs are not permitted"),
        ('{"price": {}}', "price: "),
        ('{"category": []}', "category: a list must hold one or more plain values"),
        ('{"category": [{"a": 1}]}', "category: a list must hold"),
        ('{"featured": "maybe"}', "featured: this column holds true/false"),
        ('["shoes"]', "filters must be a JSON object"),
        ("{category: shoes}", "filters must be a JSON object"),
    ],
)
def test_bad_filters_name_their_problem(metadata, text, message):
    with pytest.raises(FilterError) as caught:
        matching_rows(parse_filters(text), metadata, len(PATHS))
    assert message in str(caught.value)


def test_a_collection_without_metadata_says_so(tmp_path):
    empty = load_metadata(tmp_path / "absent.csv", PATHS)
    with pytest.raises(FilterError, match="no metadata CSV"):
        matching_rows(parse_filters('{"category": "shoes"}'), empty, len(PATHS))


def test_a_range_needs_a_bound():
    with pytest.raises(ValueError, match="at least one"):
        Range()


def test_the_mask_is_aligned_with_the_index_rows(metadata):
    mask = matching_rows(parse_filters('{"note": "z"}'), metadata, len(PATHS))
    assert mask.dtype == np.bool_ and mask.tolist() == [False, False, False, True, False]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a":' * 2000 + "1" + "}" * 2000, "filters must be a JSON object: recursion limit exceeded"),
        ('{"a": [' + ", ".join(['"x"'] * 5000) + "]}", "the limit is 16384"),
        ('{"a": "[[[[[[[[[[[[[[[["}', None),  # brackets inside a string are text, not nesting
    ],
)
def test_oversized_or_deeply_nested_filters_are_refused(text, words):
    if words is None:
        assert parse_filters(text) == {"a": "[[[[[[[[[[[[[[[["}
        return
    with pytest.raises(FilterError) as caught:
        parse_filters(text)
    assert words in caught.value.message and caught.value.column is None
