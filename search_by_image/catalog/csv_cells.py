"""CSV injection (OWASP): cells that start like a formula are written with a leading quote, and
read back without it, so API clients get their values as they sent them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search_by_image.lazy_imports import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = LazyModule("pandas")


#: What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _formula_like(text: str) -> bool:
    """A spreadsheet would run it (leading quotes aside, so that quoting stays reversible)."""
    bare = text.lstrip("'")
    return bare.startswith(FORMULA_STARTS) and not is_number(bare)


def neutralised(text: str) -> str:
    """`text` as it may be written to the CSV: `'` before a would-be formula (`=1+2`, `@SUM(..)`,
    `-2+3`), plain numbers such as `-5` left alone."""
    return "'" + text if _formula_like(text) else text


def restored(text: str) -> str:
    """What `neutralised` was given: API clients get their values back as they sent them."""
    return text[1:] if text.startswith("'") and _formula_like(text[1:]) else text


def restored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV read back: every cell and column name `restored`."""
    frame = frame.rename(columns=lambda c: restored(str(c)))
    for column in frame.columns:
        if pd.api.types.is_string_dtype(frame[column]):
            quoted = frame[column].str.startswith("'", na=False)
            if quoted.any():
                frame[column] = frame[column].where(
                    ~quoted, frame[column].map(lambda v: restored(v) if isinstance(v, str) else v)
                )
    return frame
