"""A duplicates pass from the command line with its progress on stderr: the pass runs on a
thread of its own while a bar follows its `Progress` (images searched, then pairs checked)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from search_by_image.ranking.duplicate_pass import Progress

Result = TypeVar("Result")
#: Seconds between two updates of the bar.
TICK_S = 0.5
UNITS = {"neighbours": ("Nearest images", "img"), "pairs": ("Pairs checked", "pair")}


def with_bar(run: Callable[[Progress], Result], quiet: bool = False) -> Result:
    """`run(progress)` on a thread, a bar per phase on stderr meanwhile (none if `quiet`)."""
    from tqdm import tqdm

    progress = Progress()
    bars: dict[str, tqdm] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="duplicates-pass") as pool:
        future = pool.submit(run, progress)
        try:
            while True:
                finished = bool(wait([future], TICK_S).done)
                phase = progress.phase
                if phase not in bars:
                    for shown in bars.values():
                        shown.close()
                    desc, unit = UNITS.get(phase, (phase, "it"))
                    bars[phase] = tqdm(
                        total=progress.total, desc=desc, unit=unit, file=sys.stderr, disable=quiet
                    )
                bar = bars[phase]
                bar.total, bar.n = progress.total, progress.done
                bar.refresh()
                if finished:
                    break
        finally:
            for shown in bars.values():
                shown.close()
        return future.result()
