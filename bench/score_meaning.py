"""What a search score means, per whitening: the evidence behind ranking/match_kinds.py's thresholds.

    python -m bench.score_meaning                      # 384-d shrinkage 1 and 512-d shrinkage 2
    python -m bench.score_meaning --whitenings 512:2   # one whitening (dims:shrinkage)

holidays_subset300 (811 thumbnails) is indexed by the indexer (`evaluation.product`) with each
whitening; then, with scores alone (no verification, upright), the share of 900 altered copies
(seeds 1-3, evaluation/alterations.py) whose source scores at least each threshold through the
code of POST /search, the share of the 903 same-scene Holidays pairs (other shots of one scene), of
the photos with any other photo that high (what a duplicate group at that threshold would hold),
and the count of different-scene pairs that high (from the stored vectors). For each whitening, the
thresholds that pass the same share of each column as the first whitening's `copy` and `similar`:
the same meaning on the other scale. Tables: bench/README.md "Score meaning".
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.quality import DATASETS, PROJECT_DIR
from search_by_image.evaluation.alterations import altered_copies, pick_sources
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import ProductSearch, index_like_a_user
from search_by_image.index import whitening
from search_by_image.ranking.match_kinds import thresholds_for

COPIES, SEEDS = 300, (1, 2, 3)
THRESHOLDS = np.round(np.arange(0.2, 0.851, 0.05), 2)


def scores(holidays: Path, work: Path, dims: int, shrinkage: float):
    """(copies' scores with their source, same-scene pair scores, best other score per photo,
    different-scene pair scores, the index's thresholds) for one whitening."""
    truth = GroundTruth.read(holidays)
    whitening.SHRINKAGE = shrinkage
    settings = index_like_a_user(
        {f: holidays / "images" / f for f in truth.files},
        work / f"w{dims}-{shrinkage}",
        onnx_dir=PROJECT_DIR / "saved" / "onnx",
        whitening=dims,
        verify_top=0,
        query_rotations=False,
        query_expansion=False,
    )

    def open_photo(i: int) -> Image.Image:
        return Image.open(holidays / "images" / truth.files[i])

    with ProductSearch(settings) as search:
        store = search.store
        assert store.whitening is not None and store.whitening.dims == dims
        copy_scores = []
        for seed in SEEDS:
            for copy in altered_copies(open_photo, pick_sources(COPIES, len(truth.files), seed), seed):
                found = dict(search.results(copy.data))
                copy_scores.append(found.get(truth.files[copy.source], -1.0))
        ids = np.array([store.id_of(f) for f in truth.files])
        vectors = store.searchable_vectors(ids)
        kinds = thresholds_for(store.whitening)
    similarity = vectors @ vectors.T
    groups = np.array(truth.groups)
    same = groups[:, None] == groups[None, :]
    upper = np.triu(np.ones_like(same), 1)
    np.fill_diagonal(similarity, -1.0)
    return (
        np.array(copy_scores),
        similarity[same & upper],
        similarity.max(axis=1),
        similarity[~same & upper],
        kinds,
    )


def matched(reference: np.ndarray, at: float, other: np.ndarray) -> float:
    """The threshold on `other`'s scale passed by the share of its pairs that pass `at` on
    `reference`'s."""
    return float(np.quantile(other, 1 - np.mean(reference >= at)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--whitenings", nargs="+", default=["384:1", "512:2"], help="dims:shrinkage")
    args = parser.parse_args(argv)
    holidays = args.datasets_dir / "holidays_subset300"
    if not (holidays / "groundtruth.csv").is_file():
        print(f"{holidays} not found: the datasets live in ../shared/datasets beside the repo")
        return 0
    reference = None
    with tempfile.TemporaryDirectory(prefix="sbi-meaning-") as tmp:
        for spec in args.whitenings:
            dims, shrinkage = int(spec.split(":")[0]), float(spec.split(":")[1])
            copies, same, best, other, kinds = scores(holidays, Path(tmp), dims, shrinkage)
            print(
                f"\n{dims}-d whitening, shrinkage {shrinkage} "
                f"(copy >= {kinds.copy}, similar >= {kinds.similar})\n\n"
                "| score at least | altered copies | same-scene pairs | photos with one that high "
                "| other-scene pairs |"
            )
            print("|---|---|---|---|---|")
            for t in THRESHOLDS:
                print(
                    f"| {t:.2f} | {np.mean(copies >= t):.3f} | {np.mean(same >= t):.3f} | "
                    f"{np.mean(best >= t):.3f} | {int(np.sum(other >= t))} |"
                )
            if reference is None:
                reference = (copies, same, best, other, kinds)
                continue
            print("\nthe first whitening's thresholds on this scale, matching the share of:")
            for name, ref, here in zip(
                ("copies", "same-scene pairs", "photos", "other-scene pairs"),
                reference,
                (copies, same, best, other),
            ):
                print(
                    f"- {name}: copy {reference[4].copy} -> {matched(ref, reference[4].copy, here):.3f}, "
                    f"similar {reference[4].similar} -> {matched(ref, reference[4].similar, here):.3f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
