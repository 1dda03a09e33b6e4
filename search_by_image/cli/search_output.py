"""What `with_faiss.py search` prints on stdout, one photo at a time: a table (the top k of each
photo, for reading), CSV (one row per photo, its best match: "which of these do I already
have?") or JSON (every result with its metadata)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TextIO

from search_by_image.catalog.csv_cells import neutralised

FORMATS = ("table", "csv", "json")
CSV_COLUMNS = ("input", "best_path", "best_score", "best_match", "found", "error")


@dataclass(frozen=True)
class Result:
    """One result as POST /search answers it (score rounded as it rounds it)."""

    rank: int
    path: str
    score: float
    match: str
    inliers: int | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One input photo: its results, best first, or why it could not be searched."""

    input: str
    results: list[Result]
    error: str | None


class Table:
    """A block per photo: its name, then rank, score, match and path of each result."""

    def __init__(self, out: TextIO):
        self.out = out

    def row(self, row: Row) -> None:
        lines = [row.input]
        if row.error is not None:
            lines.append(f"  error: {row.error}")
        elif not row.results:
            lines.append("  no results")
        else:
            lines.append(f"  {'rank':>4}  {'score':>7}  {'match':<7}  path")
            lines += [f"  {r.rank:>4}  {r.score:>7.4f}  {r.match:<7}  {r.path}" for r in row.results]
        self.out.write("\n".join(lines) + "\n\n")
        self.out.flush()

    def close(self) -> None:
        pass


class Csv:
    """One line per photo: its best result, found=yes when that is a copy. Cells that a
    spreadsheet would run as formulas (a file named `=HYPERLINK(...).jpg`) are quoted
    (csv_cells.neutralised)."""

    def __init__(self, out: TextIO):
        self.out = out
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS)

    def row(self, row: Row) -> None:
        best = row.results[0] if row.results else None
        cells: list[str] = [neutralised(row.input)]
        if best is None:
            cells += ["", "", ""]
        else:
            cells += [neutralised(best.path), f"{best.score:.4f}", best.match]
        cells.append("" if row.error is not None else "yes" if best and best.match == "copy" else "no")
        cells.append(neutralised(row.error or ""))
        self.writer.writerow(cells)
        self.out.flush()

    def close(self) -> None:
        pass


class Json:
    """A list of {input, results: [{rank, path, score, match, inliers, metadata}], error},
    written once every photo is searched."""

    def __init__(self, out: TextIO):
        self.out = out
        self.rows: list[dict[str, Any]] = []

    def row(self, row: Row) -> None:
        self.rows.append(asdict(row))

    def close(self) -> None:
        json.dump(self.rows, self.out, indent=1, default=str)
        self.out.write("\n")
        self.out.flush()


class Writer(Protocol):
    def row(self, row: Row) -> None: ...

    def close(self) -> None: ...


def writer_for(fmt: str, out: TextIO) -> Writer:
    writers: dict[str, Callable[[TextIO], Writer]] = {"table": Table, "csv": Csv, "json": Json}
    return writers[fmt](out)
