"""The Ray engine: the indexer's shard function on Ray Data workers, on a local Ray (the default)
or an existing cluster (`--ray-address`).

Each worker builds the collection's embedder once and embeds whole shards with the same function
the local engine uses (`local_engine.embed_files`); a shard comes back to the driver as the bytes of
its shard file, so nodes need no shared disk, and the driver writes each one the moment it
arrives: a killed run resumes from there. Ray ships this package to its workers (`py_modules`), so
they need no PYTHONPATH and a cluster's nodes no copy of the project, only its dependencies.

On the local Ray (no `--ray-address`) the workers share the driver's disk, so they write each
image's grid thumbnail from the same decode, like the local engine. On a cluster they do not (a
node may not see the saved folder, and shipping thumbnails back would add to what each shard
sends): the service makes each one on its first request instead.

A local Ray's processes end with the indexer, however it ends, SIGKILL included (ray_reaper.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

import search_by_image
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.indexing import ray_reaper
from search_by_image.indexing.shards import ShardFiles, ShardResult
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import Settings

log = logging.getLogger(__name__)


class ShardEmbedder:
    """Ray Data callable: rows of (shard number, paths as JSON) in, shard file bytes out."""

    def __init__(self, spec_json: str, settings_json: str, images_dir: str, saved_dir: str | None = None):
        """`saved_dir`: the collection's, where the workers write thumbnails (a local Ray's)."""
        from search_by_image.indexing.local_engine import embed_files

        self.settings = Settings.model_validate_json(settings_json)
        self.embed_files = embed_files
        self.images_dir = Path(images_dir)
        self.thumbnails = Thumbnails(Path(saved_dir)) if saved_dir else None
        self.embedder = Embedder.configured(EmbedderSpec.model_validate_json(spec_json), self.settings)

    def __call__(self, batch: dict) -> dict:
        results = []
        for number, paths in zip(batch["number"], batch["paths"]):
            done, rows, skipped = self.embed_files(
                self.embedder,
                self.images_dir,
                json.loads(paths),
                self.settings.batch_size,
                0,
                self.settings.max_image_pixels,
                progress=False,
                thumbnails=self.thumbnails,
            )
            results.append(ShardResult(int(number), done, rows, skipped).to_bytes())
        return {"number": np.asarray(batch["number"]), "result": np.array(results, dtype=object)}


def embed_shards(
    settings: Settings,
    spec: EmbedderSpec,
    images_dir: Path,
    pending: dict[int, list[str]],
    files: ShardFiles,
    progress: bool,
    address: str | None = None,
    workers: int = 2,
    thumbnails: Thumbnails | None = None,
) -> None:
    """`thumbnails`: written by the workers on a local Ray only (they share this disk)."""
    import ray

    started_here = not ray.is_initialized()
    # a local Ray's processes end with this one, even killed (ray_reaper); a cluster's are its own
    watcher = ray_reaper.watch() if started_here and not address else None
    try:
        if started_here:
            context = ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
                runtime_env={"py_modules": [str(Path(search_by_image.__file__).parent)]},
            )
            ray_reaper.tell(watcher, getattr(context, "address_info", {}).get("session_dir"))
    except BaseException:
        ray_reaper.dismiss(watcher)
        raise
    try:
        rows = [{"number": number, "paths": json.dumps(paths)} for number, paths in pending.items()]
        results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ShardEmbedder,
            batch_size=1,
            concurrency=workers,
            num_cpus=1,
            fn_constructor_kwargs={
                "spec_json": spec.model_dump_json(),
                "settings_json": settings.model_dump_json(),
                "images_dir": str(images_dir),
                "saved_dir": str(thumbnails.saved_dir) if thumbnails and not address else None,
            },
        )
        with tqdm(
            total=sum(map(len, pending.values())), unit="img", desc="Embedding (ray)", disable=not progress
        ) as bar:
            for row in results.iter_rows():
                number = int(row["number"])
                files.write_bytes(number, row["result"])
                bar.update(len(pending[number]))
    finally:
        if started_here:
            ray.shutdown()
        ray_reaper.dismiss(watcher)
