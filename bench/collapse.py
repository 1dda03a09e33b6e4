"""Collapsed results: `python -m bench.collapse`.

Holidays (holidays_subset300) with altered copies planted (evaluation/alterations.py: several
seeded copies of each of some photos, indexed incrementally as a user adding them would), then
searched through the product's own call (serving.search, as POST /search) with and without
collapse=copies, in the same run:
- queries: a fresh altered copy of each planted photo (its original and its copies all match),
  and the Holidays queries (other shots of a scene);
- counted: top-10 lists holding two or more versions of one photo (the original or a planted
  copy of it), by the ground truth; and the queries whose own photo is still in the top 10.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

from bench.tables import table
from search_by_image.evaluation.alterations import altered_copies, pick_sources
from search_by_image.evaluation.measures import GroundTruth
from search_by_image.evaluation.product import ProductSearch, index_like_a_user

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=DATASETS / "holidays_subset300")
    parser.add_argument("--photos", type=int, default=100, help="photos given planted copies")
    parser.add_argument("--copies", type=int, default=3, help="altered copies planted per photo")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300, help="Holidays queries searched (the first N)")
    args = parser.parse_args(argv)
    truth = GroundTruth.read(args.dataset)

    def load(i: int) -> Image.Image:
        return Image.open(args.dataset / "images" / truth.files[i])

    sources = pick_sources(args.photos, len(truth.files), 7)
    photo_of = {f: f for f in truth.files}
    images: dict[str, Path | bytes] = {f: args.dataset / "images" / f for f in truth.files}
    for seed in range(1, args.copies + 1):
        for n, copy in enumerate(altered_copies(load, sources, 100 + seed)):
            name = f"planted-{seed}-{n:03d}.jpg"
            images[name], photo_of[name] = copy.data, truth.files[copy.source]
    queries = [(truth.files[c.source], c.data) for c in altered_copies(load, sources, 999)]
    asked = truth.queries[: args.queries]
    queries += [(truth.files[q], (args.dataset / "images" / truth.files[q]).read_bytes()) for q in asked]
    rows = []
    with (
        tempfile.TemporaryDirectory() as root,
        ProductSearch(index_like_a_user(images, Path(root))) as search,
    ):
        _, groups = search.collection.duplicates(None, wait_s=None)  # the whole pass, however loaded
        copies_groups = sum(g.kind == "copies" for g in groups)
        for collapse in (False, True):
            repeated = own = stood_for = 0
            for photo, data in queries:
                answer = search.response(data, args.k, collapse=collapse)
                versions = Counter(photo_of[h.path] for h in answer.results)
                repeated += any(n > 1 for n in versions.values())
                own += photo in versions
                stood_for += sum(answer.copies)
            rows.append(
                [
                    "collapse=copies" if collapse else "none (baseline)",
                    len(queries),
                    repeated,
                    f"{repeated / len(queries):.3f}",
                    f"{own / len(queries):.3f}",
                    stood_for,
                ]
            )
    table(
        f"Collapsed results: {args.dataset.name} ({len(truth.files)} photos) + {args.copies} altered "
        f"copies of {args.photos} photos planted ({copies_groups} copies groups found); "
        f"{args.photos} altered-copy queries + {len(asked)} Holidays queries, top {args.k}",
        [
            "collapse",
            "queries",
            "top-k with 2+ versions of a photo",
            "share",
            "query's photo in top-k",
            "copies folded",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
