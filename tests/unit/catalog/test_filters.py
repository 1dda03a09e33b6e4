"""Metadata filters: the syntax, the type checks that name their column, and the ids selected
from the collection's database."""

from types import SimpleNamespace

import pytest

from search_by_image.catalog.filters import FilterError, Range, parse_filters
from search_by_image.catalog.metadata_import import sync
from search_by_image.catalog.metadata_view import MetadataView

CSV = """path,category,price,taken,featured,note
a.jpg,shoes,50,2019-05-01,true,x
b.jpg,shoes,150,2020-07-10,false,y
c.jpg,bags,80,2021-12-31,true,
d.jpg,bags,,2022-01-02,false,z
"""
PATHS = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]  # e.jpg has no CSV row


def view_of(folder, csv_text: str | None, paths=PATHS) -> MetadataView:
    csv = folder / "data.csv"
    if csv_text is not None:
        csv.write_text(csv_text)
    sync(folder, csv, SimpleNamespace(ids=list(range(len(paths))), paths=paths))
    return MetadataView(folder)


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    return view_of(tmp_path_factory.mktemp("filters"), CSV)


def rows(metadata, text: str) -> list[str]:
    conditions = parse_filters(text)
    if not conditions:
        return PATHS
    return [PATHS[i] for i in metadata.select(conditions)]


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
        metadata.select(parse_filters(text))
    assert message in str(caught.value)


def test_a_collection_without_metadata_says_so(tmp_path):
    empty = view_of(tmp_path, None)
    with pytest.raises(FilterError, match="no metadata CSV"):
        empty.select(parse_filters('{"category": "shoes"}'))


def test_a_range_needs_a_bound():
    with pytest.raises(ValueError, match="at least one"):
        Range()


def test_the_selected_ids_are_the_images_ids(tmp_path):
    """Ids, not positions: the database holds each image under its index id."""
    csv = tmp_path / "data.csv"
    csv.write_text(CSV)
    sync(tmp_path, csv, SimpleNamespace(ids=[10, 11, 12, 13, 40], paths=PATHS))
    view = MetadataView(tmp_path)
    assert view.select(parse_filters('{"note": "z"}')).tolist() == [13]
    assert view.select(parse_filters('{"category": "shoes"}'), below=11).tolist() == [10]


@pytest.mark.parametrize(
    "value",
    ["shoes' OR '1'='1", 'shoes" OR 1=1 --', "x); DROP TABLE metadata_rows; --", "%", "*"],
)
def test_values_that_look_like_sql_are_only_values(metadata, value):
    """Values are bound as parameters: they match only a cell that holds them, and the table
    is still there afterwards."""
    assert metadata.select({"category": value}).tolist() == []
    assert metadata.select({"category": [value, "bags"]}).tolist() == [2, 3]
    assert rows(metadata, '{"category": "shoes"}') == ["a.jpg", "b.jpg"]


def test_column_names_that_look_like_sql_are_columns(tmp_path):
    view = view_of(tmp_path, 'path,"a"" OR 1=1 --",v0\na.jpg,x,1\nb.jpg,y,2\n', ["a.jpg", "b.jpg"])
    assert view.kinds == {'a" OR 1=1 --': "text", "v0": "number"}
    assert view.select({'a" OR 1=1 --': "y"}).tolist() == [1]
    assert view.select(parse_filters('{"v0": {"gt": 1}}')).tolist() == [1]


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
