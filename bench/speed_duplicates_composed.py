"""Speed, the duplicates page on a real-like 100k collection built fast:
`python -m bench.speed_duplicates_composed`.

The collection: the Holidays subset (811 photos) and its altered copies (300 per seed), indexed
for real as bench/speed_duplicates_pass.py does, plus COMPOSED mosaics up to `--images`
(bench/composed_mosaics.py: real pixels in each thumbnail, keypoints composed from the sources'
own, SYNTHETIC descriptors), committed by the indexer itself. Two kinds of mosaics:

- `--whole`: the very mosaics of speed_duplicates_pass (the same draws of four whole Holidays
  photos, squeezed square): the composition checked against the same collection built for real;
- default: each quadrant a random square crop (40-100% of the shorter side; 15-100% for a
  camera-size wallpaper) of a photo drawn from a larger pool (Holidays, the UKBench sample, the
  Debian wallpapers of bench/wallpapers.py), so that mosaics sharing a photo rarely share the
  same pixels. A crop's descriptor is its photo's plus noise calibrated on real crops embedded
  by the product (`--crop-noise`, the mean cosine of a crop's descriptor to its photo's).

Then the page is timed through the API in-process (speed_duplicates_pass.measure): the first
call, after one add, after one delete. `--tune NOISE...` prints instead the pairs the pass would
consider per image (the neighbours' links it checks or leaves implied) for each mosaic noise,
next to `--compare SAVED`'s (a collection built for real). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench import composed_mosaics as composed
from bench.speed_duplicates_pass import HOLIDAYS, collection_images, measure, mosaic

UKBENCH = HOLIDAYS.parent / "ukbench_subset14"
#: decode sizes (longest side) of the pool's photos, and their crops' smallest share
PHOTO_SIDE, WALLPAPER_SIDE = 768, 2048
SMALLEST, WALLPAPER_SMALLEST = 0.4, 0.15
#: a whole photo's side in speed_duplicates_pass's mosaics
SQUEEZED = 512


def features_of(saved: Path) -> dict[str, np.ndarray]:
    from search_by_image.index.store import IndexStore

    store = IndexStore.load(saved)
    return {path: store.features[row] for row, path in enumerate(store.paths)}


def pool(work: Path, whole: bool) -> tuple[list[composed.Source], list[float]]:
    """The sources (Holidays first, in file order) and each one's smallest crop share."""
    from search_by_image.evaluation.product import index_like_a_user

    holidays = sorted((HOLIDAYS / "images").iterdir())
    files = {f.name: f for f in holidays}
    if not whole:
        extra = sorted((UKBENCH / "images").iterdir())
        from bench import wallpapers

        extra += wallpapers.photos()
        files |= {f"pool-{n:03d}{f.suffix.lower()}": f for n, f in enumerate(extra)}
        index_like_a_user({k: v for k, v in files.items() if k.startswith("pool-")}, work / "pool")
    found = features_of(work / "saved") | (features_of(work / "pool" / "saved") if not whole else {})
    sources, smallest = [], []
    for name, file in files.items():
        big = name.startswith("pool-") and "wallpapers" in str(file)
        image = composed.decoded(file, WALLPAPER_SIDE if big else PHOTO_SIDE)  # no EXIF turn
        if whole:  # squeezed square first, as speed_duplicates_pass pastes it: its keypoints too
            image = image.resize((SQUEEZED, SQUEEZED), Image.Resampling.BICUBIC)
        sources.append(composed.source(name, image, found[name]))
        smallest.append(WALLPAPER_SMALLEST if big else SMALLEST)
    return sources, smallest


def recipes(
    count: int, sources: list[composed.Source], smallest: list[float], whole: bool
) -> dict[str, list[composed.Crop]]:
    """`count` mosaics: speed_duplicates_pass's draws (`whole`) or random crops of the pool."""
    out = {}
    if whole:
        rng = np.random.default_rng(5)
        for n in range(count):
            drawn = rng.choice(811, 4, replace=False)
            out[f"mosaic-{n:05d}.jpg"] = [
                composed.Crop(int(i), (0.0, 0.0, *map(float, sources[i].image.size))) for i in drawn
            ]
        return out
    rng = np.random.default_rng(7)
    for n in range(count):
        drawn = rng.choice(len(sources), 4, replace=False)
        out[f"composed-{n:06d}.jpg"] = [
            composed.random_crop(rng, int(i), sources[i].image.size, smallest[i]) for i in drawn
        ]
    return out


def crop_noise(work: Path, sources: list[composed.Source], smallest: list[float], samples: int = 48) -> float:
    """The crop noise whose expected cosine to the photo's descriptor is the mean cosine of real
    crops' (`samples` random crops embedded by the product) to their photo's."""
    import io

    from search_by_image.evaluation.product import index_like_a_user

    rng = np.random.default_rng(11)
    images, source_of = {}, {}
    for n in range(samples):
        number = int(rng.integers(len(sources)))
        photo = sources[number]
        crop = composed.random_crop(rng, number, photo.image.size, smallest[number])
        buffer = io.BytesIO()
        photo.image.crop(tuple(round(v) for v in crop.box)).save(buffer, format="JPEG", quality=90)
        images[f"crop-{n:03d}.jpg"], source_of[f"crop-{n:03d}.jpg"] = buffer.getvalue(), photo
    index_like_a_user(images, work / "calibration")
    found = features_of(work / "calibration" / "saved")
    cosines = [float(found[name] @ source_of[name].feature / np.linalg.norm(found[name])) for name in images]
    mean = float(np.mean(cosines))
    print(f"crops' cosine to their photo: mean {mean:.3f} (sd {np.std(cosines):.3f}, {samples} crops)")
    return float(np.sqrt(1 / mean**2 - 1))


def pairs_per_image(features: np.ndarray, paths: list[str], whitening: int) -> float:
    """The pairs a duplicates pass considers (checked or left implied) per image, on an index
    built of these features as the indexer builds it."""
    from search_by_image.index.store import IndexStore
    from search_by_image.model.embedder import EmbedderSpec
    from search_by_image.ranking.duplicates import Neighbours
    from search_by_image.ranking.match_kinds import thresholds_for
    from search_by_image.ranking.pair_checks import CHECKED_NEAREST
    from search_by_image.settings import Settings

    spec = EmbedderSpec.from_settings(Settings(model="efficientnet_lite0"))
    store = IndexStore.create(spec, features, paths, {p: (0, 0) for p in paths}, whitening_dims=whitening)
    neighbours = Neighbours.of(store)  # type: ignore[arg-type]
    links = neighbours.links(thresholds_for(store.whitening).similar, CHECKED_NEAREST)
    return sum(1 for _ in links) / len(paths)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sbi-duplicates-composed"))
    parser.add_argument("--images", type=int, default=100_000, help="in all, real photos included")
    parser.add_argument("--mosaics", type=int, help="mosaics (default: up to --images)")
    parser.add_argument("--seeds", type=int, default=2, help="altered copies: 300 per seed")
    parser.add_argument("--whole", action="store_true", help="speed_duplicates_pass's mosaics")
    parser.add_argument("--noise", type=float, default=0.35, help="norm of a mosaic descriptor's noise")
    parser.add_argument("--crop-noise", type=float, default=None, help="default: calibrated")
    parser.add_argument("--start-from", type=Path, help="a saved folder holding the real photos")
    parser.add_argument("--tune", type=float, nargs="*", help="mosaic noises to compare, no build")
    parser.add_argument("--compare", type=Path, help="with --tune: a saved folder built for real")
    parser.add_argument("--workers", type=int, default=1, help="processes writing the mosaics")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)

    from search_by_image.evaluation.product import index_like_a_user
    from search_by_image.indexing.indexer import update_index

    started = time.perf_counter()
    real = collection_images(HOLIDAYS, args.seeds, 0, args.work / "images")
    start_from = args.start_from if not (args.work / "saved").exists() else None
    settings = index_like_a_user(real, args.work, start_from=start_from)
    sources, smallest = pool(args.work, args.whole)
    count = args.mosaics if args.mosaics is not None else args.images - len(settings_paths(settings))
    made = recipes(count, sources, smallest, args.whole)
    noise_of_crops = 0.0 if args.whole else args.crop_noise
    if noise_of_crops is None:
        noise_of_crops = crop_noise(args.work, sources, smallest)
    seconds = time.perf_counter() - started
    print(f"real photos and sources ready in {seconds:.0f} s; crop noise {noise_of_crops:.3f}", flush=True)
    if args.tune is not None:
        return tune(args, settings, made, sources, noise_of_crops)
    written = composed.write_mosaics(settings.images_dir, settings.saved_dir, made, sources, args.workers)
    print(f"{written} mosaics written in {time.perf_counter() - started:.0f} s", flush=True)
    engine = composed.ComposedEngine(made, sources, args.noise, noise_of_crops)
    report = update_index(settings, progress=False, engine=engine)
    print(f"indexed ({report.total} images) in {time.perf_counter() - started:.0f} s", flush=True)
    if not args.build_only:
        kind = "whole photos" if args.whole else "crops of a pool"
        measure(
            settings, f"GET /duplicates, COMPOSED mosaics ({kind}; synthetic descriptors, noise {args.noise})"
        )


def settings_paths(settings) -> list[str]:
    from search_by_image.index.store import IndexStore

    return [
        p for p in IndexStore.load(settings.saved_dir).paths if not p.startswith(("mosaic-", "composed-"))
    ]


def tune(args, settings, made, sources, noise_of_crops: float) -> None:
    real = features_of(settings.saved_dir)
    paths = settings_paths(settings)
    base = np.stack([real[p] for p in paths])
    order = list(made)
    for noise in args.tune:
        rows = [composed.descriptor(made[p], sources, noise, noise_of_crops, n) for n, p in enumerate(order)]
        features = np.concatenate([base, np.stack(rows)])
        pairs = pairs_per_image(features, paths + order, settings.whitening)
        print(
            f"noise {noise:.3f}: {pairs:.2f} pairs considered per image ({len(features)} images)", flush=True
        )
    if args.compare:
        found = features_of(args.compare)
        names = list(found)
        pairs = pairs_per_image(np.stack([found[n] for n in names]), names, settings.whitening)
        print(f"{args.compare} (built for real): {pairs:.2f} pairs considered per image", flush=True)


__all__ = ["main", "mosaic"]

if __name__ == "__main__":
    main()
