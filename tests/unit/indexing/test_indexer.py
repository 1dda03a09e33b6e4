"""`python with_faiss.py`: incremental updates, unreadable files, metadata report, the CLI."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import PHOTOS, copy_photos, make_settings

import with_faiss
from config import PROJECT_DIR
from search_by_image.errors import IndexBusy, SpecMismatch
from search_by_image.index.disk import writer_lock
from search_by_image.index.store import IndexStore
from search_by_image.indexing.indexer import update_index

FOUR = ["chelsea.jpg", "coffee.jpg", "dog.jpg", "rocket.jpg"]


def assert_consistent(settings):
    store = IndexStore.load(settings.saved_dir)
    assert len(store.paths) == len(store.features) == store.index.ntotal
    return store


def test_incremental_add_change_remove_and_noop(tmp_path):
    settings = make_settings(tmp_path)
    images = settings.images_dir
    copy_photos(images, FOUR)
    first = update_index(settings, progress=False)
    assert (first.embedded, first.total) == (4, 4)
    before = assert_consistent(settings)

    again = update_index(settings, progress=False)
    assert (again.embedded, again.written) == (0, False)

    copy_photos(images, ["eagle.jpg"])
    (images / "dog.jpg").unlink()
    shutil.copy2(PHOTOS / "kite.jpg", images / "coffee.jpg")  # same name, new content
    os.utime(images / "coffee.jpg", ns=(1, 1))
    report = update_index(settings, progress=False)
    assert (report.embedded, report.reused, report.removed) == (2, 2, 2)

    after = assert_consistent(settings)
    assert sorted(after.paths) == ["chelsea.jpg", "coffee.jpg", "eagle.jpg", "rocket.jpg"]
    row = after.row_of_path("chelsea.jpg")
    assert np.allclose(after.features[row], before.features[before.row_of_path("chelsea.jpg")])
    kite_like = after.search(after.features[[after.row_of_path("coffee.jpg")]], 1)[0][0]
    assert after.paths[after.row_of(kite_like[0])] == "coffee.jpg"
    ids_before = dict(zip(before.paths, before.ids.tolist()))
    ids_after = dict(zip(after.paths, after.ids.tolist()))
    assert all(ids_after[p] == ids_before[p] for p in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"))
    assert ids_after["eagle.jpg"] == 4  # a new path gets a new id; dog's id 2 is not reused


def test_unreadable_files_are_skipped_counted_and_never_misaligned(tmp_path, caplog):
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, FOUR)
    (settings.images_dir / "notes.jpg").write_text("not a photo")
    (settings.images_dir / "cut.jpg").write_bytes((PHOTOS / "giraffe.jpg").read_bytes()[:5000])
    with caplog.at_level(logging.WARNING):
        report = update_index(settings, progress=False)
    assert sorted(path for path, _ in report.skipped) == ["cut.jpg", "notes.jpg"]
    assert sum("Skipped" in r.getMessage() for r in caplog.records) == 2
    store = assert_consistent(settings)
    assert store.paths == sorted(FOUR)
    for row, path in enumerate(store.paths):
        assert store.search(store.features[[row]], 1)[0][0][0] == row, path
    again = update_index(settings, progress=False)
    assert not again.written and len(again.skipped) == 2  # retried, still bad: nothing rewritten


def test_other_preprocessing_is_refused_unless_rebuilding(tmp_path):
    # fp32 throughout: on a CPU with VNNI `auto` would quantize an int8 model for grayscale input
    settings = make_settings(tmp_path, precision="fp32")
    copy_photos(settings.images_dir, FOUR[:2])
    update_index(settings, progress=False)
    grey = make_settings(tmp_path, pooling="avg", grayscale=True, precision="fp32")
    with pytest.raises(SpecMismatch, match=r"pooling: gem -> avg.*--rebuild to embed all 2 images"):
        update_index(grey, progress=False)
    report = update_index(grey, rebuild=True, progress=False)
    assert report.embedded == 2 and report.reused == 0
    manifest = IndexStore.load(settings.saved_dir).manifest
    assert manifest.embedder.pooling == "avg" and manifest.embedder.preprocessing.grayscale
    again = update_index(
        make_settings(tmp_path, model="auto", pooling="avg", grayscale=True, precision="fp32"), progress=False
    )
    assert not again.written  # `auto` keeps the collection's model: nothing to redo


def test_auto_precision_keeps_a_collections_trunk_until_a_rebuild(tmp_path, monkeypatch):
    """A collection indexed with fp32 descriptors stays fp32 when `auto` would now pick int8:
    mixing them would blur its scores. --rebuild moves it to the current default."""
    from search_by_image.model import quantization

    monkeypatch.setattr(quantization, "cpu_has_vnni", lambda: True)
    copy_photos(make_settings(tmp_path).images_dir, FOUR[:2])
    update_index(make_settings(tmp_path, precision="fp32"), progress=False)
    (tmp_path / "images" / "dog.jpg").write_bytes((PHOTOS / "dog.jpg").read_bytes())
    report = update_index(make_settings(tmp_path), progress=False)
    assert (report.embedded, report.reused) == (1, 2)
    assert IndexStore.load(tmp_path / "saved").manifest.embedder.quantization == "none"
    update_index(make_settings(tmp_path), rebuild=True, progress=False)
    assert IndexStore.load(tmp_path / "saved").manifest.embedder.quantization == "int8"
    with pytest.raises(SpecMismatch, match="quantization: int8 -> none"):
        update_index(make_settings(tmp_path, precision="fp32"), progress=False)


def test_metadata_problems_are_reported_not_fatal(tmp_path, caplog):
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, FOUR[:2])
    settings.metadata_csv.write_text("image,title\nchelsea.jpg,Cat\nghost.jpg,Nobody\n")
    with caplog.at_level(logging.WARNING):
        update_index(settings, progress=False)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "ghost.jpg" in messages and "coffee.jpg" in messages


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit:
        with_faiss.main(["--help"])
    assert exit.value.code == 0
    shown = capsys.readouterr().out
    for flag in (
        "--images",
        "--output",
        "--csv",
        "--batch-size",
        "--workers",
        "--device",
        "--model",
        "--rebuild",
    ):
        assert flag in shown


def test_cli_writes_the_promised_files(tmp_path):
    """The one run of `python with_faiss.py` as its own process, as a user types it; the other
    command-line tests call its main() in this process."""
    copy_photos(tmp_path / "images", FOUR[:2])
    result = subprocess.run(
        [
            sys.executable,
            "with_faiss.py",
            "--images",
            str(tmp_path / "images"),
            "--output",
            str(tmp_path / "out"),
            "--model",
            "efficientnet_lite0",
            "--workers",
            "0",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "2 images indexed" in result.stderr
    for name in ("faiss_index.faiss", "features.npy", "images_paths.txt", "manifest.json"):
        assert (tmp_path / "out" / name).is_file()
    features = np.load(tmp_path / "out" / "features.npy")
    assert features.dtype == np.float32 and features.shape == (2, 1280)
    assert (tmp_path / "out" / "images_paths.txt").read_text().splitlines() == sorted(FOUR[:2])


MAIN_PROCESS = """
import json, sys
import with_faiss
code = with_faiss.main(sys.argv[1:])
print(json.dumps({"code": code, **{name: name in sys.modules for name in ("pandas", "onnxruntime")}}))
"""


def test_cli_leaves_the_model_to_its_worker_processes_and_pandas_unimported(tmp_path, lite0):
    """With worker processes embedding a cached model (`lite0` made it), the command line's own
    process builds no ONNX Runtime session (not even its import), and without a CSV it imports no
    pandas: each took a quarter to half a second of a run's start or end (bench/README.md, camera
    indexing)."""
    copy_photos(tmp_path / "images", FOUR)
    args = ["--images", str(tmp_path / "images"), "--output", str(tmp_path / "out")]
    args += ["--csv", str(tmp_path / "none.csv"), "--model", "efficientnet_lite0"]  # no CSV
    args += ["--workers", "2", "--batch-size", "2", "--quiet"]
    result = subprocess.run(
        [sys.executable, "-c", MAIN_PROCESS, *args], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"code": 0, "pandas": False, "onnxruntime": False}
    assert "4 images indexed: 4 embedded" in result.stderr
    assert len(IndexStore.load(tmp_path / "out").paths) == 4


def test_cli_reports_a_missing_folder(tmp_path, caplog):
    code = with_faiss.main(["--images", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")])
    assert code == 1 and "does not exist" in caplog.text


def test_an_indexer_run_refuses_to_start_while_another_writer_holds_the_collection(tmp_path):
    settings = make_settings(tmp_path)
    copy_photos(settings.images_dir, FOUR[:1])
    with writer_lock(settings.saved_dir), pytest.raises(IndexBusy, match="try again"):
        update_index(settings, progress=False)


def run_cli(caplog, *args: str) -> tuple[int, str]:
    """with_faiss.main(args) in this process: its exit code and what it logged."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = with_faiss.main(["--model", "efficientnet_lite0", "--workers", "0", "--quiet", *args])
    return code, caplog.text


def test_cli_builds_a_named_collection_that_remembers_its_folders(tmp_path, caplog):
    copy_photos(tmp_path / "pets", ["chelsea.jpg", "dog.jpg"])
    out = tmp_path / "out"
    code, log = run_cli(caplog, "--output", str(out), "--collection", "pets")
    assert code == 1 and "new: give its images folder" in log
    code, log = run_cli(
        caplog, "--output", str(out), "--collection", "pets", "--images", str(tmp_path / "pets")
    )
    assert code == 0, log
    copy_photos(tmp_path / "pets", ["horses.jpg"])
    code, log = run_cli(caplog, "--output", str(out), "--collection", "pets")  # the folder was remembered
    assert code == 0 and "1 embedded" in log, log
    store = IndexStore.load(out / "collections" / "pets")
    assert sorted(store.paths) == ["chelsea.jpg", "dog.jpg", "horses.jpg"]
    assert not (out / "manifest.json").exists()  # the default collection was not touched
    code, log = run_cli(
        caplog, "--output", str(out), "--collection", "../etc", "--images", str(tmp_path / "pets")
    )
    assert code == 1 and "invalid collection name" in log


def test_cli_waits_for_another_writer_then_indexes(tmp_path, caplog):
    """Another process (an API add) holds the collection for two seconds: the run waits for it,
    saying so, instead of giving up; with a shorter --lock-wait it gives up, naming the cause."""
    copy_photos(tmp_path / "images", FOUR[:1])
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from search_by_image.index.disk import writer_lock\n"
            f"with writer_lock(__import__('pathlib').Path({str(out)!r})):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[1]))",
            "2",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, log = run_cli(
            caplog, "--images", str(tmp_path / "images"), "--output", str(out), "--lock-wait", "0.3"
        )
        assert code == 1 and "another writer" in log
        code, log = run_cli(caplog, "--images", str(tmp_path / "images"), "--output", str(out))
        assert code == 0 and "waiting" in log and "1 embedded" in log, log
    finally:
        holder.kill()
        holder.wait()


def test_broken_symlinks_are_skipped_as_unreadable_and_the_rest_indexed(tmp_path, caplog):
    images = tmp_path / "images"
    copy_photos(images, FOUR[:2])
    (images / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (images / "loop.jpg").symlink_to(images / "loop.jpg")
    out = tmp_path / "out"
    for _ in range(2):  # and again, as watch mode runs it
        code, log = run_cli(caplog, "--images", str(images), "--output", str(out))
        assert code == 0, log
        assert sorted(IndexStore.load(out).paths) == FOUR[:2]
        listed = json.loads((out / "unreadable.json").read_text())["files"]
        assert [f["path"] for f in listed] == ["gone.jpg", "loop.jpg"]
