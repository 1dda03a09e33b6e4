"""The metadata CSV join: by path, by unique file name, with problems listed."""

from search_by_image.metadata import append_rows, load_metadata

PATHS = ["a/cat.jpg", "b/dog.jpg", "c/dog.jpg", "bird.png"]


def test_join_by_path_column_and_unique_names(tmp_path):
    csv = tmp_path / "meta.csv"
    csv.write_text("title,file,price\nCat,cat.jpg,10\nDog,b/dog.jpg,\nGhost,ghost.jpg,3\nAmbiguous,dog.jpg,1\n")
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
    original = "image,title,price\na.jpg,\"Shoe, red\",007\n"
    csv.write_text(original)
    append_rows(csv, {"uploads/b.jpg": {"title": "Bag", "colour": "blue"}})
    lines = csv.read_text().splitlines()
    assert lines[0] == "image,title,price,colour"
    assert lines[1] == 'a.jpg,"Shoe, red",007,'
    assert lines[2] == "uploads/b.jpg,Bag,,blue"
    metadata = load_metadata(csv, ["a.jpg", "uploads/b.jpg"])
    assert metadata.for_path("uploads/b.jpg")["colour"] == "blue"


def test_appending_creates_the_csv_when_there_is_none(tmp_path):
    csv = tmp_path / "new" / "metadata.csv"
    append_rows(csv, {"uploads/c.jpg": {"kind": "cat"}})
    assert load_metadata(csv, ["uploads/c.jpg"]).for_path("uploads/c.jpg") == {"kind": "cat"}
