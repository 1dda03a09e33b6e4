"""`python with_faiss.py search PHOTO_OR_FOLDER...`: the saved index searched without a server, with
POST /search's results, one CSV row per incoming photo, refusals as rows, and its exit codes."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, copy_photos, jpeg_bytes
from PIL import Image

import with_faiss
from config import PROJECT_DIR, Settings
from main import create_app
from search_by_image.cli import search as search_cli

#: demo photos whose edited copies (two thirds the size, recompressed) are verified copies, with
#: room to spare: their residual motion is about 0.05-0.08 px where a copy's limit is 0.25 (that of
#: eagle.jpg's and horses.jpg's is 0.2, of chelsea.jpg's 0.27: labelled similar)
COPIED = ("astronaut.jpg", "dog.jpg", "retina.jpg")
NEW = ("noise.png", "more/gradient.jpg", "more/waves.png")


def edited_copy(name: str) -> bytes:
    with Image.open(PHOTOS / name) as photo:
        smaller = photo.convert("RGB").resize(
            (photo.width * 2 // 3, photo.height * 2 // 3), Image.Resampling.LANCZOS
        )
    return jpeg_bytes(smaller, quality=75)


def new_pictures() -> dict[str, Image.Image]:
    """Pictures of nothing in the demo collection: noise, a gradient, a wave pattern."""
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    y, x = np.mgrid[0:300, 0:400]
    gradient = np.stack([x * 255 // 400, y * 255 // 300, (x + y) % 64 * 4], axis=-1).astype(np.uint8)
    waves = ((np.sin(x / 9.0) * np.cos(y / 13.0) + 1) * 127).astype(np.uint8)
    return dict(zip(NEW, (Image.fromarray(a) for a in (noise, gradient, waves))))


@pytest.fixture(scope="module")
def incoming(tmp_path_factory) -> Path:
    """A folder of 6 photos: edited copies of 3 indexed demo photos and 3 new pictures."""
    folder = tmp_path_factory.mktemp("incoming")
    for name in COPIED:
        (folder / f"copy_of_{name}").write_bytes(edited_copy(name))
    for name, picture in new_pictures().items():
        (folder / name).parent.mkdir(exist_ok=True)
        picture.save(folder / name)
    return folder


def where(settings: Settings) -> list[str]:
    """The flags that point the command at `settings`' collection."""
    return ["--output", str(settings.saved_dir), "--images", str(settings.images_dir)] + [
        "--csv",
        str(settings.metadata_csv),
    ]


def run(capsys, *args: str) -> tuple[int, str]:
    """`with_faiss.py search ARGS` in this process: exit code and stdout."""
    capsys.readouterr()
    code = with_faiss.main(["search", "--quiet", *args])
    return code, capsys.readouterr().out


def test_json_results_are_post_search_results(demo_collection, capsys, tmp_path):
    photo = tmp_path / "query.jpg"
    photo.write_bytes(edited_copy("chelsea.jpg"))
    code, out = run(capsys, *where(demo_collection), "--format", "json", "-k", "5", str(photo))
    assert code == 0
    (row,) = json.loads(out)
    assert row["input"] == str(photo) and row["error"] is None
    with TestClient(create_app(demo_collection)) as client:
        response = client.post(
            "/search", files={"file": ("query.jpg", photo.read_bytes(), "image/jpeg")}, data={"k": "5"}
        )
    assert response.status_code == 200
    api = response.json()["results"]
    assert [(r["rank"], r["path"], r["score"], r["match"]) for r in row["results"]] == [
        (r["rank"], r["path"], r["score"], r["match"]) for r in api
    ]
    assert [r["metadata"] for r in row["results"]] == [r["metadata"] for r in api]
    assert row["results"][0]["path"] == "chelsea.jpg"


def test_a_folder_gives_one_csv_row_per_photo_saying_which_are_already_indexed(
    demo_collection, incoming, capsys
):
    code, out = run(capsys, *where(demo_collection), str(incoming))  # a folder, stdout not a tty: CSV
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["input", "best_path", "best_score", "best_match", "found", "error"]
    by_input = {Path(row["input"]).relative_to(incoming).as_posix(): row for row in rows}
    assert set(by_input) == {f"copy_of_{name}" for name in COPIED} | set(NEW)
    for name in COPIED:
        row = by_input[f"copy_of_{name}"]
        assert (row["best_path"], row["best_match"], row["found"], row["error"]) == (name, "copy", "yes", "")
    for name in NEW:
        assert by_input[name]["found"] == "no" and by_input[name]["best_match"] != "copy"


def test_a_file_that_is_not_an_image_is_a_row_with_its_reason(demo_collection, tmp_path, capsys):
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "empty.png").write_bytes(b"")
    files = [str(tmp_path / "notes.jpg"), str(tmp_path / "empty.png"), str(PHOTOS / "dog.jpg")]
    code, out = run(capsys, *where(demo_collection), "--format", "json", "-k", "2", *files)
    assert code == 0
    rows = json.loads(out)
    assert [row["input"] for row in rows] == files
    for refused in rows[:2]:
        assert refused["results"] == [] and "cannot use this upload" in refused["error"]
    assert rows[2]["error"] is None and rows[2]["results"][0]["path"] == "dog.jpg"

    code, out = run(capsys, *where(demo_collection), "--format", "csv", files[0])
    (row,) = csv.DictReader(io.StringIO(out))
    assert row["found"] == "" and row["best_path"] == "" and "not a recognised image" in row["error"]


def test_table_and_copies_only(demo_collection, incoming, capsys):
    copy, new = incoming / "copy_of_dog.jpg", incoming / "noise.png"
    code, out = run(capsys, *where(demo_collection), "--format", "table", "-k", "3", str(copy))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(copy) and lines[1].split() == ["rank", "score", "match", "path"]
    assert lines[2].split()[0] == "1" and lines[2].split()[2:] == ["copy", "dog.jpg"]
    assert len([line for line in lines[2:] if line.strip()]) == 3

    code, out = run(capsys, *where(demo_collection), "--format", "json", "--copies-only", str(copy), str(new))
    copied, nothing = json.loads(out)
    assert [(r["path"], r["match"]) for r in copied["results"]] == [("dog.jpg", "copy")]
    assert nothing["results"] == [] and nothing["error"] is None


def test_filters_apply_as_in_post_search(demo_collection, capsys):
    photo = str(PHOTOS / "dog.jpg")
    code, out = run(
        capsys, *where(demo_collection), "--format", "json", "--filters", '{"category": "art"}', photo
    )
    assert code == 0
    (row,) = json.loads(out)
    assert row["results"] and all(r["metadata"]["category"] == "art" for r in row["results"])


def test_no_index_is_a_setup_error_that_says_to_index_first(tmp_path, capsys, caplog):
    with caplog.at_level(logging.ERROR):
        code, out = run(capsys, "--output", str(tmp_path / "nothing"), str(PHOTOS / "dog.jpg"))
    assert code == 1 and out == ""
    assert "no usable index" in caplog.text and "python with_faiss.py" in caplog.text
    code, out = run(capsys, "--output", str(tmp_path / "nothing"), "--collection", "shoes", "x.jpg")
    assert code == 2 and "no such file" in caplog.text  # inputs are checked first
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code, out = run(capsys, "--output", str(tmp_path / "nothing"), "--collection", "shoes", str(PHOTOS))
    assert code == 1 and "no collection named 'shoes'" in caplog.text
    assert "python with_faiss.py --collection shoes --images" in caplog.text


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["does-not-exist.jpg"], "no such file or folder"),
        (["--filters", "{not json", str(PHOTOS / "dog.jpg")], "--filters"),
        (["--filters", '{"no_such_column": 1}', str(PHOTOS / "dog.jpg")], "no_such_column"),
        (["--collection", "../etc", str(PHOTOS / "dog.jpg")], "--collection"),
    ],
)
def test_usage_errors_exit_2(demo_collection, capsys, caplog, args, says):
    with caplog.at_level(logging.ERROR):
        code, out = run(capsys, *where(demo_collection), *args)
    assert code == 2 and out == "" and says in caplog.text


def test_argparse_errors_exit_2(capsys):
    for args in ([], ["-k", "0", "x.jpg"], ["--format", "xml", "x.jpg"]):
        with pytest.raises(SystemExit) as exit:
            search_cli.main(args)
        assert exit.value.code == 2


def test_as_a_user_types_it_an_indexing_run_then_a_search(tmp_path, incoming):
    """`python with_faiss.py --help`, an indexing run and `python with_faiss.py search`, each its
    own process: the indexer's command line is unchanged, and `search` answers on its index."""
    shown = subprocess.run(
        [sys.executable, "with_faiss.py", "--help"], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--images" in shown.stdout and "with_faiss.py search" in shown.stdout
    copy_photos(tmp_path / "images", ["retina.jpg", "dog.jpg"])
    flags = ["--images", str(tmp_path / "images"), "--output", str(tmp_path / "out")]
    flags += ["--csv", str(tmp_path / "none.csv")]
    indexed = subprocess.run(
        [sys.executable, "with_faiss.py", *flags, "--model", "efficientnet_lite0", "--workers", "0"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert indexed.returncode == 0 and "2 images indexed" in indexed.stderr, indexed.stderr
    searched = subprocess.run(
        [sys.executable, "with_faiss.py", "search", *flags, str(incoming / "copy_of_retina.jpg")],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert searched.returncode == 0, searched.stderr
    (row,) = csv.DictReader(io.StringIO(searched.stdout))  # stdout is a pipe: CSV
    assert (row["best_path"], row["found"]) == ("retina.jpg", "yes")
