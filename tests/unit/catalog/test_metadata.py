"""The metadata CSV join: by path, by unique file name, with problems listed."""

from types import SimpleNamespace

import pytest

from search_by_image.catalog.metadata import load_metadata
from search_by_image.catalog.metadata_import import sync
from search_by_image.catalog.metadata_view import MetadataView
from search_by_image.catalog.metadata_writes import check_rows
from search_by_image.errors import MetadataRejected

PATHS = ["a/cat.jpg", "b/dog.jpg", "c/dog.jpg", "bird.png"]


def test_join_by_path_column_and_unique_names(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text(
        "title,file,price\nCat,cat.jpg,10\nDog,b/dog.jpg,\nGhost,ghost.jpg,3\nAmbiguous,dog.jpg,1\n"
    )
    metadata = load_metadata(csv, PATHS)
    assert metadata.columns == ["title", "price"]
    assert metadata.for_path("a/cat.jpg") == {"title": "Cat", "price": 10}
    assert metadata.for_path("b/dog.jpg") == {"title": "Dog", "price": None}
    assert metadata.unmatched == ["ghost.jpg", "dog.jpg"]
    assert metadata.missing == ["c/dog.jpg", "bird.png"]
    assert len(metadata.problems()) == 2


def test_path_column_is_guessed_when_unnamed(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("label,where\nbird,bird.png\n")
    assert load_metadata(csv, PATHS).for_path("bird.png") == {"label": "bird"}


def test_absent_or_broken_csv_means_no_metadata(tmp_path):
    assert load_metadata(tmp_path / "none.csv", PATHS).rows == {}
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"\x00\x01\x02")
    assert load_metadata(broken, PATHS).for_path("bird.png") == {}


def imported(folder, text: str, paths: list[str]) -> MetadataView:
    csv = folder / "data.csv"
    csv.write_text(text)
    sync(folder, csv, SimpleNamespace(ids=list(range(len(paths))), paths=paths))
    return MetadataView(folder)


def test_rows_written_through_the_api_join_the_csv_rows_when_it_is_read_again(tmp_path):
    """API rows are typed with the CSV's rules, and survive the CSV being imported again."""
    metadata = load_metadata(None, ["a.jpg"], {"a.jpg": {"n": "5", "when": "2020-01-01", "ok": True}})
    assert metadata.kinds == {"n": "number", "when": "date", "ok": "bool"}
    assert metadata.for_path("a.jpg") == {"n": 5, "when": "2020-01-01", "ok": True}
    csv = tmp_path / "data.csv"
    csv.write_text("image,title\nA.jpg,From the CSV\n")
    both = load_metadata(csv, ["A.jpg", "b.jpg"], {"A.jpg": {"title": "API"}, "b.jpg": {"title": "=2+3"}})
    assert both.for_path("A.jpg") == {"title": "From the CSV"}  # the CSV's own row wins
    assert both.for_path("b.jpg") == {"title": "=2+3"}


@pytest.mark.parametrize("key", ["path", "image_path", "Image", "photo", "FILE"])
def test_a_new_key_never_takes_over_the_image_column(tmp_path, key):
    metadata = imported(tmp_path, "title,photo\nA cat,cat.jpg\n", ["cat.jpg"])
    assert metadata.key == "photo"
    with pytest.raises(MetadataRejected) as caught:
        check_rows([{key: "x.jpg"}], metadata)
    assert caught.value.column == key and "reserved" in caught.value.message


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"width": "unknown"}, "width"),
        ({"width": True}, "width"),
        ({"width": "inf"}, "width"),
        ({"taken": "last week"}, "taken"),
        ({"taken": "2020-13-45"}, "taken"),
        ({"taken": 2020}, "taken"),
        ({"indoor": "maybe"}, "indoor"),
    ],
)
def test_a_value_of_the_wrong_kind_for_a_typed_column_is_refused(tmp_path, row, column):
    metadata = imported(tmp_path, "path,width,taken,indoor\na.jpg,640,2020-01-02,true\n", ["a.jpg"])
    with pytest.raises(MetadataRejected) as caught:
        check_rows([row], metadata)
    assert caught.value.column == column
    check_rows(
        [{"width": "1024", "taken": "2021-05-06", "indoor": False, "new": "anything"}, {"width": None}],
        metadata,
    )  # right kinds, and new columns, pass
