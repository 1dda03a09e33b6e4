"""A run's embedding work in shards: planned, written as each is done, merged in order.

The files to embed are cut, in sorted order, into shards of SHARD_SIZE paths. Each shard's result
(the paths embedded, their rows, the files skipped) goes to `<saved>/.shards/<key>/NNNNN.npz`,
written atomically the moment it is done; `key` hashes the embedder spec and the work list. A run
killed halfway and started again on the same folder with the same options finds its finished
shards and embeds only the rest, whichever engine (local or Ray) runs it. The builder merges the
shards by number, so both engines give the same rows, in the same order, with the same ids.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_by_image.layout import SHARDS_DIR
from search_by_image.model.embedder import EmbedderSpec

#: 256 images is 5-10 s of embedding on 2 cores: little is lost to a crash, and a shard's rows
#: (256 x 1280 float32 = 1.3 MB) travel cheaply from a Ray worker to the driver.
SHARD_SIZE = 256


@dataclass
class ShardResult:
    number: int
    paths: list[str]
    features: np.ndarray
    skipped: list[tuple[str, str]]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            number=self.number,
            features=self.features,
            meta=json.dumps({"paths": self.paths, "skipped": self.skipped}),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShardResult:
        with np.load(io.BytesIO(data)) as saved:
            meta = json.loads(str(saved["meta"]))
            return cls(
                int(saved["number"]),
                meta["paths"],
                saved["features"].astype(np.float32),
                [tuple(s) for s in meta["skipped"]],
            )


def plan(paths: list[str], size: int | None = None) -> list[list[str]]:
    size = size or SHARD_SIZE
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def run_key(spec: EmbedderSpec, paths: list[str]) -> str:
    digest = hashlib.sha256(spec.model_dump_json().encode())
    digest.update("\n".join(paths).encode())
    return digest.hexdigest()[:16]


class ShardFiles:
    """The finished shards of one run (one key) in a saved folder; `on_write(number)` is told of
    each shard written (how the indexer counts progress, whichever engine embeds)."""

    def __init__(self, saved_dir: Path, key: str, on_write: Callable[[int], None] | None = None):
        self.on_write = on_write
        self.root = saved_dir / SHARDS_DIR
        self.folder = self.root / key
        for stale in self.root.glob("*") if self.root.is_dir() else []:
            if stale.name != key:  # another run's leftovers: other files or other options
                shutil.rmtree(stale, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _file(self, number: int) -> Path:
        return self.folder / f"{number:05d}.npz"

    def done(self) -> set[int]:
        return {int(p.stem) for p in self.folder.glob("*.npz")}

    def write_bytes(self, number: int, data: bytes) -> None:
        staged = self.folder / f".{number:05d}.tmp"
        with open(staged, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, self._file(number))
        if self.on_write is not None:
            self.on_write(number)

    def write(self, result: ShardResult) -> None:
        self.write_bytes(result.number, result.to_bytes())

    def read(self, number: int) -> ShardResult:
        return ShardResult.from_bytes(self._file(number).read_bytes())

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
