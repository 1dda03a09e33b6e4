"""The metadata CSV join: by path, by unique file name, with problems listed."""

import pytest

from search_by_image.catalog.metadata import load_metadata
from search_by_image.catalog.metadata_writes import append_rows, check_rows, remove_rows
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


def test_describe_offers_choices_and_ranges(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_text("file,colour,size,made\nx.jpg,red,3,2020-01-01\ny.jpg,blue,7.5,2021-06-30\n")
    columns = {c.name: c for c in load_metadata(csv, ["x.jpg", "y.jpg"]).described}
    assert columns["colour"].values == ["blue", "red"]
    assert (columns["size"].kind, columns["size"].min, columns["size"].max) == ("number", 3.0, 7.5)
    assert (columns["made"].min, columns["made"].max) == ("2020-01-01", "2021-06-30")


def test_appended_rows_keep_the_existing_text_as_it_was(tmp_path):
    csv = tmp_path / "data.csv"
    original = 'image,title,price\na.jpg,"Shoe, red",007\n'
    csv.write_text(original)
    append_rows(csv, {"uploads/b.jpg": {"title": "Bag", "colour": "blue"}}, ["a.jpg"])
    lines = csv.read_text().splitlines()
    assert lines[0] == "image,title,price,colour"
    assert lines[1] == 'a.jpg,"Shoe, red",007,'
    assert lines[2] == "uploads/b.jpg,Bag,,blue"
    metadata = load_metadata(csv, ["a.jpg", "uploads/b.jpg"])
    assert metadata.for_path("uploads/b.jpg")["colour"] == "blue"


def test_appending_creates_the_csv_when_there_is_none(tmp_path):
    csv = tmp_path / "new" / "metadata.csv"
    append_rows(csv, {"uploads/c.jpg": {"kind": "cat"}}, [])
    assert load_metadata(csv, ["uploads/c.jpg"]).for_path("uploads/c.jpg") == {"kind": "cat"}


def test_the_image_column_found_by_content_is_the_same_for_reading_appending_and_removing(tmp_path):
    """Columns `title,photo`: no column is named like a path, so the content decides, and the
    same rule decides for every operation (append wrote the path into `title` before)."""
    csv = tmp_path / "data.csv"
    csv.write_text("title,photo\nA cat,cat.jpg\nA dog,dog.jpg\n")
    indexed = ["cat.jpg", "dog.jpg"]
    append_rows(csv, {"uploads/new.jpg": {"title": "New"}}, indexed)
    indexed.append("uploads/new.jpg")
    metadata = load_metadata(csv, indexed)
    assert metadata.key == "photo" and metadata.for_path("uploads/new.jpg") == {"title": "New"}
    assert remove_rows(csv, "dog.jpg", indexed) == [{"title": "A dog", "photo": "dog.jpg"}]
    assert load_metadata(csv, indexed).for_path("cat.jpg") == {"title": "A cat"}


@pytest.mark.parametrize("key", ["path", "image_path", "Image", "photo", "FILE"])
def test_a_new_key_never_takes_over_the_image_column(tmp_path, key):
    csv = tmp_path / "data.csv"
    csv.write_text("title,photo\nA cat,cat.jpg\n")
    with pytest.raises(MetadataRejected) as caught:
        check_rows([{key: "x.jpg"}], load_metadata(csv, ["cat.jpg"]))
    assert caught.value.column == key and "reserved" in caught.value.message


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ({"width": "unknown"}, "width"),
        ({"width": True}, "width"),
        ({"taken": "last week"}, "taken"),
        ({"taken": 2020}, "taken"),
        ({"indoor": "maybe"}, "indoor"),
    ],
)
def test_a_value_of_the_wrong_kind_for_a_typed_column_is_refused(tmp_path, row, column):
    csv = tmp_path / "data.csv"
    csv.write_text("path,width,taken,indoor\na.jpg,640,2020-01-02,true\n")
    metadata = load_metadata(csv, ["a.jpg"])
    with pytest.raises(MetadataRejected) as caught:
        check_rows([row], metadata)
    assert caught.value.column == column
    check_rows(
        [{"width": "1024", "taken": "2021-05-06", "indoor": False, "new": "anything"}, {"width": None}],
        metadata,
    )  # right kinds, and new columns, pass


def test_formulas_are_neutralised_in_the_csv_and_given_back_as_sent(tmp_path):
    """OWASP CSV injection: =, +, -, @, tab and CR start a formula in a spreadsheet."""
    csv = tmp_path / "data.csv"
    sent = {
        "note": '=HYPERLINK("http://x")',
        "sum": "@SUM(A1)",
        "neg": "-5",
        "calc": "-2+3",
        "=cmd": "quoted",
        "plain": "'already quoted",
    }
    append_rows(csv, {"a.jpg": sent}, [])
    written = csv.read_text()
    assert "'=HYPERLINK" in written and "'@SUM" in written and "'-2+3" in written
    assert "'=cmd" in written and ",-5," in written + ","
    assert not any(line.split(",")[0].startswith(("=", "@")) for line in written.splitlines())
    assert load_metadata(csv, ["a.jpg"]).for_path("a.jpg") == {**sent, "neg": -5}
