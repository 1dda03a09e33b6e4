"""The local engine: the indexer's images embedded on this machine, shard by shard.

On the CPU, `workers` processes each decode and embed their own images with a share of the cores'
threads, instead of one multi-threaded model fed by DataLoader decode processes: on the project's
2-core machine it indexed faster than one two-threaded process, with or without decode processes
(bench/README.md: the indexing table, and "Figures behind the code's choices"). Nothing is copied
between processes, no thread waits for another's batch, and single-threaded ONNX Runtime does more
per core. On a GPU one process
runs the model and `workers` DataLoader processes decode for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.devices import is_gpu
from search_by_image.errors import IndexingInterrupted
from search_by_image.indexing import worker_processes
from search_by_image.indexing.image_folder import Batch, ImageFolder
from search_by_image.indexing.shards import ShardFiles, ShardResult
from search_by_image.model.embedder import Embedder, EmbedderSpec
from search_by_image.settings import Settings

log = logging.getLogger(__name__)

#: Images per task of a worker process: small enough that the processes finish together (a
#: 256-image shard per task left one process idle for seconds at the end of a run), large enough
#: for full batches and to make a task's overhead (a pickled list of paths and rows) negligible.
CHUNK = 64


def embed_files(
    embedder: Embedder,
    images_dir: Path,
    paths: list[str],
    batch_size: int,
    workers: int,
    max_pixels: int,
    progress: bool = True,
    bar: tqdm | None = None,
    thumbnails: Thumbnails | None = None,
    keypoints: KeypointStore | None = None,
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Embed `paths` in batches; returns the embedded paths, their rows and the skipped files.

    The one embedding function: both engines call it, on chunks of shards. `workers` DataLoader
    processes decode (0: this process decodes between batches, without torch); `bar` is a
    progress bar to advance instead of drawing one; `thumbnails` are written from the same decode,
    and each batch's local keypoints to `keypoints`.
    """
    dataset = ImageFolder(
        images_dir, paths, embedder.preprocessing, max_pixels, thumbnails, keypoints is not None
    )
    loader = _batches(dataset, batch_size, workers)
    done: list[str] = []
    rows: list[np.ndarray] = [np.empty((0, embedder.spec.dim), np.float32)]
    skipped: list[tuple[str, str]] = []
    own_bar = (
        tqdm(total=len(paths), unit="img", desc="Embedding", disable=not progress) if bar is None else None
    )
    with logging_redirect_tqdm(), own_bar or contextlib.nullcontext(bar) as bar:
        for batch in loader:
            for index, reason in batch.failed:
                log.warning("Skipped %s: %s", paths[index], reason)
                skipped.append((paths[index], reason))
            if keypoints is not None:
                keypoints.put(batch.keypoints)
            if batch.indices:
                rows.append(embedder.embed_prepared(batch.prepared))
                done.extend(paths[i] for i in batch.indices)
            bar.update(len(batch.indices) + len(batch.failed))
    return done, np.concatenate(rows), skipped


def _batches(dataset: ImageFolder, batch_size: int, workers: int) -> Iterable[Batch]:
    if workers == 0:
        return (
            ImageFolder.collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            for start in range(0, len(dataset), batch_size)
        )
    from torch.utils.data import DataLoader

    # a map-style dataset (__len__, __getitem__) without torch's Dataset base class
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=ImageFolder.collate,
    )


#: The embedder and settings of a worker process, made once by `_start_worker`.
_worker: tuple[Embedder, Settings] | None = None


def _start_worker(spec_json: str, settings_json: str, threads: int, caller: int) -> None:
    from search_by_image.settings import Settings

    global _worker
    worker_processes.end_with(caller)  # no worker outlives the indexer, however it is stopped
    logging.disable(logging.WARNING)  # the parent logs skipped files, once
    settings = Settings.model_validate_json(settings_json)
    spec = EmbedderSpec.model_validate_json(spec_json)
    _worker = (Embedder.configured(spec, settings, threads), settings)


def _embed_chunk(
    images_dir: str, paths: list[str], thumbnails: Thumbnails | None, keypoints: KeypointStore | None
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    if _worker is None:
        raise RuntimeError("_embed_chunk runs in a worker process that _start_worker set up")
    embedder, settings = _worker
    return embed_files(
        embedder,
        Path(images_dir),
        paths,
        settings.batch_size,
        0,
        settings.max_image_pixels,
        progress=False,
        thumbnails=thumbnails,
        keypoints=keypoints,
    )


def embed_shards(
    settings: Settings,
    spec: EmbedderSpec,
    images_dir: Path,
    pending: dict[int, list[str]],
    files: ShardFiles,
    progress: bool,
    thumbnails: Thumbnails | None = None,
    keypoints: KeypointStore | None = None,
) -> None:
    """Embed each pending shard and write its file as soon as all its images are done (and each
    image's thumbnail, with `thumbnails`, and its local keypoints, with `keypoints`)."""
    processes = settings.workers
    chunks = plan_chunks(pending, max(1, processes), settings.batch_size)
    processes = min(processes, len(chunks))
    gpu = is_gpu(Embedder.placement(spec, settings.device, settings.runtime)[0])
    with (
        tqdm(
            total=sum(map(len, pending.values())), unit="img", desc="Embedding", disable=not progress
        ) as bar,
        logging_redirect_tqdm(),
    ):
        if gpu or processes <= 1:
            embedder = Embedder.configured(spec, settings)
            workers = settings.workers if gpu else 0
            for number, paths in pending.items():
                done, rows, skipped = embed_files(
                    embedder,
                    images_dir,
                    paths,
                    settings.batch_size,
                    workers,
                    settings.max_image_pixels,
                    bar=bar,
                    thumbnails=thumbnails,
                    keypoints=keypoints,
                )
                files.write(ShardResult(number, done, rows, skipped))
        else:
            Embedder.prepare(spec, settings)  # the model, exported or quantized once, for the workers
            _embed_in_processes(
                settings, spec, images_dir, chunks, processes, files, bar, (thumbnails, keypoints)
            )


def plan_chunks(pending: dict[int, list[str]], processes: int, smallest: int) -> list[tuple[int, list[str]]]:
    """The worker processes' tasks as (shard, paths), in the order they are handed out.

    Guided self-scheduling: `CHUNK` images per task until what is left is under two chunks per
    process, then a share of the rest that halves down to `smallest` (a batch), so the processes
    finish within a small task of each other. With fixed 64-image tasks, one of 2 processes sat
    idle for the end of the run while the other did the last task (bench/README.md, indexing).
    """
    remaining = sum(map(len, pending.values()))
    chunks = []
    for number, paths in pending.items():
        start = 0
        while start < len(paths):
            size = min(CHUNK, max(smallest, remaining // (2 * processes)))
            chunks.append((number, paths[start : start + size]))
            remaining -= len(chunks[-1][1])
            start += size
    return chunks


def _embed_in_processes(
    settings: Settings,
    spec: EmbedderSpec,
    images_dir: Path,
    chunks: list[tuple[int, list[str]]],
    processes: int,
    files: ShardFiles,
    bar: tqdm,
    written: tuple[Thumbnails | None, KeypointStore | None],
) -> None:
    threads = max(1, (os.cpu_count() or 1) // processes)
    expected = Counter(number for number, _ in chunks)
    parts: dict[int, dict[int, tuple]] = {number: {} for number in expected}
    with ProcessPoolExecutor(
        processes,
        mp_context=worker_processes.context(),
        initializer=_start_worker,
        initargs=(spec.model_dump_json(), settings.model_dump_json(), threads, os.getpid()),
    ) as pool:
        running = {
            pool.submit(_embed_chunk, str(images_dir), paths, *written): (number, order)
            for order, (number, paths) in enumerate(chunks)
        }
        with _stopped_on_interrupt(pool):
            for future in as_completed(running):
                number, order = running[future]
                try:
                    done, rows, skipped = future.result()
                except BrokenProcessPool as exc:
                    raise IndexingInterrupted(
                        "an embedding worker process died (out of memory?); the shards finished so "
                        "far are kept: run again to resume, with fewer --workers if memory is short"
                    ) from exc
                for path, reason in skipped:
                    log.warning("Skipped %s: %s", path, reason)
                bar.update(len(done) + len(skipped))
                parts[number][order] = (done, rows, skipped)
                if len(parts[number]) == expected[number]:
                    files.write(_shard(number, [parts[number][key] for key in sorted(parts[number])]))


@contextlib.contextmanager
def _stopped_on_interrupt(pool: ProcessPoolExecutor) -> Iterator[None]:
    """Interrupted (Ctrl-C, SIGTERM, an error), the pool's queued work is dropped and its workers
    killed: leaving the `with` would otherwise wait for every queued chunk to be embedded."""
    try:
        yield
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        kill = getattr(pool, "kill_workers", None)  # Python 3.14
        if kill is not None:
            kill()
        else:  # before 3.14 the pool's processes are only reachable privately
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
        raise


def _shard(number: int, chunks: list[tuple[list[str], np.ndarray, list[tuple[str, str]]]]) -> ShardResult:
    """One shard's result from its chunks' results, in path order."""
    return ShardResult(
        number,
        [path for done, _, _ in chunks for path in done],
        np.concatenate([rows for _, rows, _ in chunks]),
        [item for _, _, skipped in chunks for item in skipped],
    )
