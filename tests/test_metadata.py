"""The metadata CSV join: by path, by unique file name, with problems listed."""

from search_by_image.metadata import load_metadata

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
