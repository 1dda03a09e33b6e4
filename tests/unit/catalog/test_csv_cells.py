"""CSV injection: what the service writes to a metadata CSV, and what API clients get back."""

import pandas as pd
import pytest

from search_by_image.catalog.csv_cells import neutralised, restored, restored_frame


@pytest.mark.parametrize("text", ["=1+2", "@SUM(A1:A9)", "+33 1 23", "-2+3", "\tcmd", '=HYPERLINK("x")'])
def test_a_would_be_formula_is_written_quoted_and_read_back_as_sent(text):
    written = neutralised(text)
    assert written == "'" + text and restored(written) == text


@pytest.mark.parametrize("text", ["-5", "+1.5e3", "Rex", "", "it's"])
def test_numbers_and_plain_text_are_written_as_they_are(text):
    assert neutralised(text) == text and restored(text) == text


def test_text_that_already_starts_with_a_quote_survives_the_round_trip():
    for text in ("'=1+2", "''@x", "'plain"):
        assert restored(neutralised(text)) == text


def test_a_csv_read_back_has_its_cells_and_column_names_restored():
    frame = pd.DataFrame({"'=title": ["'=1+2", "Rex", None], "age": [1, 2, 3]})
    back = restored_frame(frame)
    assert list(back.columns) == ["=title", "age"]
    assert back["=title"].tolist()[:2] == ["=1+2", "Rex"] and pd.isna(back["=title"].iloc[2])
    assert back["age"].tolist() == [1, 2, 3]
