"""What bench/quality.py measures on a collection indexed like a user's: ranks of altered copies,
mAP with and without local verification and query expansion, paired latency, planted duplicates,
UKBench N-S.

Tables: bench/README.md.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search_by_image.devices import single_threaded_blas
from search_by_image.evaluation.alterations import altered_copies, pick_sources
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import (
    DuplicateFinding,
    ProductSearch,
    duplicate_finding,
    index_like_a_user,
    product_map,
    source_ranks,
)
from search_by_image.settings import Settings

#: Altered copies per seed, and the seeds: 1 is the development set, 2 held out, 3 planted,
#: 4 photos turned sideways (alterations.sideways_copies).
COPIES = 300
DEV_SEED, HELD_OUT_SEED, PLANTED_SEED, SIDEWAYS_SEED = 1, 2, 3, 4


def rank_row(label: str, ranks) -> str:
    worst = int(ranks.ranks.max()) if len(ranks.ranks) else "-"
    return (
        f"| {label} | {len(ranks.ranks)} | {ranks.rank1:.3f} | {ranks.mean_rank:.3f} | {worst} "
        f"| {ranks.refused} |"
    )


@dataclass
class Measured:
    """One configuration's figures through the product (scores alone, or verified)."""

    map: float = 0.0
    p1: float = 0.0
    ranks: dict = None
    #: altered copies (seed 1) whose source came first labelled `copy`
    copies_labelled: float = 0.0
    #: same-scene results (other shots, in the Holidays queries' top 10) labelled `copy`
    reshots_labelled: float = 0.0
    reshots: int = 0
    found: object = None


def measure(settings: Settings, holidays: Path, truth: GroundTruth, copies: dict) -> Measured:
    out = Measured()
    with ProductSearch(settings) as search:
        queries = [(holidays / "images" / truth.files[q]).read_bytes() for q in truth.queries]
        out.map, out.p1 = product_map(search, holidays, truth)
        out.ranks = {seed: source_ranks(search, c, truth.files) for seed, c in copies.items()}
        labelled = []
        for copy in copies[DEV_SEED]:
            top = search.response(copy.data, 1).results[0]
            labelled.append(top.path == truth.files[copy.source] and top.match == "copy")
        out.copies_labelled = float(np.mean(labelled))
        reshot_labels = []
        for query, data in zip(truth.queries, queries):
            for hit in search.response(data, 10).results:
                if (
                    hit.path != truth.files[query]
                    and truth.groups[truth.files.index(hit.path)] == truth.groups[query]
                ):
                    reshot_labels.append(hit.match == "copy")
        out.reshots, out.reshots_labelled = len(reshot_labels), float(np.mean(reshot_labels))
    return out


def paired_latency(
    settings: Settings, holidays: Path, truth: GroundTruth, variants: list[dict]
) -> list[tuple]:
    """ms of the POST /search code in-process (decode, embed, search, verify; k=10) for each
    Holidays query under each of `variants` (settings changes), the services taking turns query
    by query so that the shared machine's load falls on all alike. Two passes: on the first the
    results' keypoints are computed from their thumbnails, on the second they are in memory.
    numpy's BLAS is made single-threaded first, as the service does at startup (SearchService.start;
    ProductSearch does not): with its threads, a search's small products wait for the cores faiss
    and the checks want, and on a loaded machine that time, not the work, made the ratios."""
    single_threaded_blas()
    queries = [(holidays / "images" / truth.files[q]).read_bytes() for q in truth.queries]
    timed = []
    with ExitStack() as stack:
        searches = [
            stack.enter_context(ProductSearch(settings.model_copy(update=changes))) for changes in variants
        ]
        for _ in range(2):
            for data in queries:
                row = []
                for search in searches:
                    started = time.perf_counter()
                    search.response(data, 10)
                    row.append((time.perf_counter() - started) * 1e3)
                timed.append(tuple(row))
    return timed


def planted_collection(settings: Settings, holidays: Path, truth: GroundTruth, work: Path):
    """Copy the indexed collection, add the planted copies to its folder and run the indexer
    again (incremental: only the copies are embedded); its settings and {copy: original}."""
    copies = altered_copies(
        lambda i: Image.open(holidays / "images" / truth.files[i]),
        pick_sources(COPIES, len(truth.files), PLANTED_SEED),
        PLANTED_SEED,
    )
    planted = {f"planted-{n:03d}-{truth.files[c.source]}": c.data for n, c in enumerate(copies)}
    images = {f: holidays / "images" / f for f in truth.files} | planted
    overrides = {k: v for k, v in settings.model_dump().items() if k == "onnx_dir" or k == "whitening"}
    planted_settings = index_like_a_user(images, work / "planted", start_from=settings.saved_dir, **overrides)
    return planted_settings, {name: truth.files[c.source] for name, c in zip(planted, copies)}


def planted_duplicates(planted, truth: GroundTruth, changes: dict, identical) -> DuplicateFinding:
    """The duplicate groups the service shows at the default threshold (Collection.duplicates,
    what GET /duplicates runs) under the settings `changes`, scored against the planted copies."""
    settings, copy_of = planted
    with ProductSearch(settings.model_copy(update=changes)) as search:
        _, groups = search.collection.duplicates(None, wait_s=None)  # the whole pass, however loaded
    return duplicate_finding(groups, copy_of, truth.files, identical)


def product_ns(ukbench: Path, work: Path, overrides: dict) -> float:
    """UKBench N-S through the product (every image a query, itself included in its top 4)."""
    truth = GroundTruth.read(ukbench)
    settings = index_like_a_user(
        {f: ukbench / "images" / f for f in truth.files}, work / "ukbench", **overrides
    )
    group_of = dict(zip(truth.files, truth.groups))
    with ProductSearch(settings) as search:
        hits = [
            sum(
                group_of[p] == group_of[name]
                for p, _ in search.results((ukbench / "images" / name).read_bytes(), 4)
            )
            for name in truth.files
        ]
    return float(np.mean(hits))
