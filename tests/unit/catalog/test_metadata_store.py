"""The metadata in the collection's database: typed columns, rows written and removed one at a
time, imports that keep API rows, the filter controls, and the CSV export."""

import csv
import io
import os
from types import SimpleNamespace

import pytest

from search_by_image.catalog import metadata_store as store
from search_by_image.catalog.database import connect, transaction
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.metadata_import import export_csv, import_csv, is_current, sync, sync_csv
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.errors import MetadataRejected

CSV = """file,colour,size,made,indoor
x.jpg,red,3,2020-01-01,true
y.jpg,blue,7.5,2021-06-30T10:30,false
"""
PATHS = ["x.jpg", "y.jpg", "z.jpg"]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "data.csv").write_text(CSV)
    sync(tmp_path, tmp_path / "data.csv", SimpleNamespace(ids=[0, 1, 2], paths=PATHS))
    return tmp_path


def written(folder, image_id, path, values):
    conn = connect(folder, store.SCHEMA)
    with transaction(conn):
        store.put(conn, image_id, path, values)
    return conn


def test_columns_are_typed_and_rows_read_back_as_the_csv_gave_them(folder):
    view = MetadataView(folder)
    assert view.kinds == {"colour": "text", "size": "number", "made": "date", "indoor": "bool"}
    assert view.key == "file"
    assert view.rows_for([0, 1, 2]) == {
        0: {"colour": "red", "size": 3.0, "made": "2020-01-01", "indoor": True},
        1: {"colour": "blue", "size": 7.5, "made": "2021-06-30T10:30", "indoor": False},
    }  # z.jpg has no row: {} for it, as before


def test_the_filter_controls_come_from_the_indexes(folder):
    columns = {c.name: c for c in MetadataView(folder).described}
    assert columns["colour"].values == ["blue", "red"]
    assert (columns["size"].min, columns["size"].max) == (3.0, 7.5)
    assert (columns["made"].min, columns["made"].max) == ("2020-01-01", "2021-06-30")
    assert columns["indoor"].values is None and columns["indoor"].min is None


def test_a_text_column_with_many_values_gets_no_drop_down(tmp_path):
    paths = [f"{i}.jpg" for i in range(40)]
    (tmp_path / "data.csv").write_text("path,tag\n" + "".join(f"{p},t{i}\n" for i, p in enumerate(paths)))
    sync(tmp_path, tmp_path / "data.csv", SimpleNamespace(ids=list(range(40)), paths=paths))
    (column,) = MetadataView(tmp_path).described
    assert column.values is None


def test_an_add_is_one_row_and_the_controls_follow_it(folder):
    view = MetadataView(folder)
    assert [c.values for c in view.described if c.name == "colour"] == [["blue", "red"]]
    written(
        folder, 7, "uploads/n.jpg", {"colour": "green", "size": "12", "made": "2019-02-03", "note": "new"}
    )
    assert view.for_id(7) == {
        "colour": "green",
        "size": 12,
        "made": "2019-02-03",
        "indoor": None,
        "note": "new",
    }
    assert view.kinds["note"] == "text"
    described = {c.name: c for c in view.described}
    assert described["colour"].values == ["blue", "green", "red"]
    assert (described["made"].min, described["size"].max) == ("2019-02-03", 12.0)
    assert view.select(parse_filters('{"size": {"gte": 10}}')).tolist() == [7]
    assert view.select(parse_filters('{"made": {"lt": "2020-01-01"}}')).tolist() == [7]
    assert (folder / "data.csv").read_text() == CSV  # the user's CSV is never written


def test_a_date_range_compares_times_not_text(folder):
    view = MetadataView(folder)
    assert view.select(parse_filters('{"made": {"gte": "2021-06-30"}}')).tolist() == [1]
    assert view.select(parse_filters('{"made": {"lte": "2021-06-30"}}')).tolist() == [0]
    assert view.select(parse_filters('{"made": "2020-01-01"}')).tolist() == [0]


def test_a_value_of_the_wrong_kind_is_refused_and_nothing_is_written(folder):
    conn = connect(folder, store.SCHEMA)
    with pytest.raises(MetadataRejected) as caught, transaction(conn):
        store.put(conn, 9, "uploads/bad.jpg", {"size": "big"})
    assert caught.value.column == "size"
    assert MetadataView(folder).for_id(9) == {}
    assert store.id_of_path(conn, "uploads/bad.jpg") is None


def test_a_delete_removes_the_row_and_returns_it(folder):
    conn = connect(folder, store.SCHEMA)
    with transaction(conn):
        gone = store.remove(conn, [1, 99])
    assert gone == {
        1: ("y.jpg", {"colour": "blue", "size": 7.5, "made": "2021-06-30T10:30", "indoor": False})
    }
    view = MetadataView(folder)
    assert view.select(parse_filters('{"colour": "blue"}')).tolist() == []
    assert [c.values for c in view.described if c.name == "colour"] == [["red"]]


def test_a_new_import_keeps_api_rows_and_the_csv_wins_for_its_own(folder):
    written(folder, 5, "uploads/a.jpg", {"colour": "pink", "size": 1})
    written(folder, 6, "z.jpg", {"colour": "grey"})
    csv_path = folder / "data.csv"
    csv_path.write_text(CSV + "z.jpg,white,2,2022-01-01,true\n")
    conn = connect(folder, store.SCHEMA)
    paths, ids = ["x.jpg", "y.jpg", "z.jpg", "uploads/a.jpg"], [0, 1, 6, 5]
    assert not is_current(conn, csv_path, ids)
    assert import_csv(conn, csv_path, ids, paths) is not None
    view = MetadataView(folder)
    assert view.for_id(5)["colour"] == "pink" and view.for_id(6)["colour"] == "white"
    assert is_current(conn, csv_path, ids) and import_csv(conn, csv_path, ids, paths) is None


def test_an_edited_csv_is_noticed_by_its_stamp(folder):
    conn = connect(folder, store.SCHEMA)
    csv_path = folder / "data.csv"
    assert is_current(conn, csv_path, [0, 1, 2])
    csv_path.write_text(CSV.replace("red", "crimson"))
    os.utime(csv_path, ns=(1, 1))
    assert not is_current(conn, csv_path, [0, 1, 2])
    sync(folder, csv_path, SimpleNamespace(ids=[0, 1, 2], paths=PATHS))
    assert MetadataView(folder).for_id(0)["colour"] == "crimson"


def test_the_export_has_the_csv_columns_and_the_api_rows_with_formulas_neutralised(folder):
    conn = written(folder, 7, "uploads/f.jpg", {"colour": "=HYPERLINK(1)", "note": "-5", "calc": "-2+3"})
    text = "".join(export_csv(conn))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["file", "colour", "size", "made", "indoor", "note", "calc"]
    assert [r["file"] for r in rows] == ["x.jpg", "y.jpg", "z.jpg", "uploads/f.jpg"]
    assert rows[0] == {
        "file": "x.jpg",
        "colour": "red",
        "size": "3",
        "made": "2020-01-01",
        "indoor": "true",
    } | {
        "note": "",
        "calc": "",
    }
    assert rows[3]["colour"] == "'=HYPERLINK(1)" and rows[3]["note"] == "-5" and rows[3]["calc"] == "'-2+3"
    # exported, then given back as the collection's CSV: the same values as sent
    (folder / "data.csv").write_text(text)
    sync(folder, folder / "data.csv", SimpleNamespace(ids=[0, 1, 2, 7], paths=[*PATHS, "uploads/f.jpg"]))
    assert MetadataView(folder).for_id(7) | {} == {
        "colour": "=HYPERLINK(1)",
        "size": None,
        "made": None,
        "indoor": None,
        "note": -5,
        "calc": "-2+3",
    }


def test_the_service_imports_only_an_edited_csv_and_keeps_the_images_the_database_holds(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text(CSV)
    asked = []

    def images():
        asked.append(True)
        return [0, 1, 2], PATHS

    sync_csv(tmp_path, csv_path, images)  # never imported: joined to the served images
    assert asked == [True]
    written(tmp_path, 9, "uploads/live.jpg", {"colour": "teal"})  # a live add
    sync_csv(tmp_path, csv_path, images)  # unchanged: nothing parsed, nothing asked
    csv_path.write_text(CSV.replace("blue", "navy"))
    os.utime(csv_path, ns=(1, 1))
    sync_csv(tmp_path, csv_path, images)  # edited: joined to the rows held, the live add kept
    assert asked == [True]
    view = MetadataView(tmp_path)
    assert view.for_id(1)["colour"] == "navy" and view.for_id(9)["colour"] == "teal"
