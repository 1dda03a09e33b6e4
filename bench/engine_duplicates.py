"""The duplicates pass of a collection stored in Milvus (serving/engine_duplicates.py), timed.

    nice -n 10 python -m bench.engine_duplicates [--count 10000] [--dim 384] [--writes 10] [--server]

Synthetic descriptors (said plainly: no images, so verification is off and groups come from
scores alone): `--count` unit vectors, one in 50 with a near copy planted. They are stored in a
milvus-lite file (Milvus's engine in this process; the standalone server answers the same calls),
or, with `--server`, in the real Milvus 2.3.5 standalone server started on 127.0.0.1; then
timed: the first page request (the engine listed, every image searched for its 32 nearest,
the groups found), one after `--writes` adds and as many deletes (the engine listed again, the
pass carried: only the added images searched), and one more with nothing written since (no call
to the engine). Baseline in the same run: the same k-NN as one exact FAISS search in this
process (what the embedded pass searches).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faiss
import numpy as np

from bench.engines_service import milvus
from search_by_image.catalog.locations import Location
from search_by_image.index.milvus_store import MilvusStorage
from search_by_image.index.vector_storage import StorageAddress
from search_by_image.serving.engine_duplicates import EngineDuplicates
from search_by_image.serving.engine_snapshot import EngineStore
from search_by_image.serving.engine_writes import mark_writes


def vectors(count: int, dim: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    found = rng.normal(size=(count, dim)).astype(np.float32)
    copies = np.arange(0, count - 1, 50)
    found[copies + 1] = found[copies] + 0.1 * rng.normal(size=(len(copies), dim)).astype(np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def timed(work) -> tuple[float, Any]:
    started = time.perf_counter()
    found = work()
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--server", action="store_true", help="the Milvus 2.3.5 standalone server")
    args = parser.parse_args()
    data = vectors(args.count + args.writes, args.dim)
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        if args.server:
            address = StorageAddress.parse(stack.enter_context(milvus(Path(folder) / "milvus", 19680)))
            storage = MilvusStorage(cast(StorageAddress, address), "bench")
        else:
            storage = MilvusStorage(
                StorageAddress("milvus", "127.0.0.1", 19530), "bench", uri=f"{folder}/lite.db"
            )
        storage.create(args.dim, "Flat", args.count)
        ids = list(range(args.count))
        took, _ = timed(
            lambda: storage.add(ids, data[: args.count], [f"{i}.jpg" for i in ids], [{}] * args.count)
        )
        where = "the server" if args.server else "milvus-lite"
        print(f"stored {args.count} x {args.dim}-d in {where}: {took:.1f} s")
        mark_writes(Path(folder))  # as `cli.storage export` does
        manifest = SimpleNamespace(generation="bench", embedder=SimpleNamespace(dim=args.dim))
        location = Location(name="bench", images_dir=Path(folder), metadata_csv=None, saved_dir=Path(folder))
        engine = EngineStore(storage, cast(Any, manifest), None, location)
        duplicates = EngineDuplicates(location, None, 8)
        for label, before in (
            ("first request (whole pass)", None),
            (f"after {args.writes} adds + {args.writes} deletes (listed again, carried)", "writes"),
            ("again, nothing written since (within 60 s of that listing)", None),
        ):
            if before == "writes":
                new = list(range(args.count, args.count + args.writes))
                storage.add(new, data[args.count :], [f"{i}.jpg" for i in new], [{}] * args.writes)
                storage.delete(list(range(1, 2 * args.writes, 2)))
                mark_writes(location.saved_dir)  # as the service's writes do
            took, groups = timed(lambda: duplicates.groups(engine, 0.8, None, None))
            print(f"{label}: {took:.2f} s, {len(groups)} groups")
        took, _ = timed(lambda: faiss_pass(data[: args.count]))
        print(f"baseline, the same 33-NN by one exact FAISS search in process: {took:.2f} s")
        storage.close()


def faiss_pass(data: np.ndarray) -> np.ndarray:
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    return index.search(data, 33)[1]


if __name__ == "__main__":
    main()
