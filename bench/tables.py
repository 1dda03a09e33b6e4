"""What every bench shares: Markdown tables on stdout, scratch folders removed at exit, rates."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: A pixel limit no bench photo reaches (the benches time decoding, not refusing).
BIG = 50_000_000


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n### {title}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(f"{c:.1f}" if isinstance(c, float) else str(c) for c in row) + " |")
    sys.stdout.flush()


def scratch(prefix: str) -> Path:
    """A temporary folder, removed when the bench exits (exports, indexes and symlinked datasets
    of every section otherwise piled up in /tmp run after run)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def timed(fn, x, repeats: int) -> float:
    fn(x)
    started = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return rate(repeats * len(x), time.perf_counter() - started)
