"""`with_faiss.py --duplicates` shows the pass's progress on stderr (a bar per phase), never on
stdout, where the groups go; the pass's result or its error comes back."""

import time

import pytest

from search_by_image.cli import pass_progress


def slow_pass(progress):
    for phase, total in (("neighbours", 4), ("pairs", 6)):
        for done in range(total + 1):
            progress.phase, progress.done, progress.total = phase, done, total
            time.sleep(0.05)
    return "groups"


def test_each_phase_shows_its_bar_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(pass_progress, "TICK_S", 0.02)
    assert pass_progress.with_bar(slow_pass) == "groups"
    shown = capsys.readouterr()
    assert "Nearest images" in shown.err and "Pairs checked" in shown.err and "6/6" in shown.err
    assert shown.out == ""


def test_quiet_shows_nothing_and_errors_come_back(capsys):
    assert pass_progress.with_bar(slow_pass, quiet=True) == "groups"
    assert capsys.readouterr().err == ""

    def failing(progress):
        raise OSError("thumbnail folder gone")

    with pytest.raises(OSError, match="gone"):
        pass_progress.with_bar(failing)
