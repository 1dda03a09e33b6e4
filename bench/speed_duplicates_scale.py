"""Speed, the duplicates page's carry-over at 100k and 1M: `python -m bench.speed_duplicates_scale`.

What a live add costs the duplicates page where the collection is big: the neighbour list and
the verified pairs carried over the write (duplicate_pass.py), the groups assembled again. On a
collection that `bench.scale_service --keep` built (SYNTHETIC descriptors, no image files:
`--root` holds saved/, data.csv, images/), in-process through the API (TestClient):
GET /collections/default/duplicates (the whole pass), one real photo added with POST
/collections/default/images, the page again, the photo deleted, the page again.

Local verification cannot run on images without pixels, so a pair whose images have no file is
a copy when its score is a copy's (match_kinds; a stand-in, so that groups and the pairs they
leave implied exist at this size); pairs with a real file, the added photo's, are checked for
real. The verification of a new image's pairs on real photos is measured by
`bench.speed_duplicates_pass` (0.3-1.2 s at 2.4k-5.4k images). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from PIL import Image

from bench.served import PHOTO, jpeg
from bench.speed_duplicates_pass import answered
from bench.tables import table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a collection of bench.scale_service")
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient

    from main import create_app
    from search_by_image.api.auth import KeyStore
    from search_by_image.layout import KEYS_FILE
    from search_by_image.ranking import verifier
    from search_by_image.ranking.match_kinds import thresholds_for
    from search_by_image.settings import Settings

    root = args.root
    settings = Settings(
        images_dir=root / "images",
        metadata_csv=root / "data.csv",
        saved_dir=root / "saved",
        model="efficientnet_lite0",
        rate_limit="",
    )
    real = verifier.Verifier.is_copy

    def is_copy(self, store, a: int, b: int, try_mirror: bool = True) -> bool:
        if not all((settings.images_dir / store.path_of(i)).is_file() for i in (a, b)):
            first, second = store.searchable_vectors([a, b])  # no pixels: a copy by its score
            return float(first @ second) >= thresholds_for(store.whitening).copy
        return real(self, store, a, b, try_mirror)

    verifier.Verifier.is_copy = is_copy  # type: ignore[method-assign]
    (settings.saved_dir / KEYS_FILE).unlink(missing_ok=True)
    _, key = KeyStore(settings.saved_dir / KEYS_FILE).create("admin", "bench")
    headers = {"Authorization": f"Bearer {key}"}
    url = "/collections/default/duplicates"
    rows = []

    def timed(call: str, images: int) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        total = answered(client, url)["total"]
        rows.append(
            [call, images, f"{time.perf_counter() - started:.2f}", f"{time.process_time() - cpu:.2f}", total]
        )
        print(rows[-1], flush=True)

    with TestClient(create_app(settings)) as client:
        collections = client.app.state.service.collections
        while "default" not in collections or collections["default"].loading:
            time.sleep(0.2)
        images = len(client.app.state.service.default.require().store)
        timed("first call (the whole pass)", images)
        photo = jpeg(Image.open(PHOTO).convert("RGB").resize((640, 480)))
        added = client.post(
            url.replace("duplicates", "images"),
            headers=headers,
            files=[("files", ("new.jpg", photo, "image/jpeg"))],
        )
        assert added.status_code == 201, added.text
        timed("after one add", images + 1)
        image_id = added.json()["images"][0]["id"]
        client.delete(f"/collections/default/images/{image_id}", headers=headers).raise_for_status()
        timed("after one delete", images)
    table(
        f"GET /duplicates at {images:,} images (synthetic descriptors, verification stand-in: docstring)",
        ["call", "images", "wall s", "CPU s", "groups"],
        rows,
    )
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
