"""Where an indexer run embeds its pending shards: an engine, one call behind a swappable strategy.

`LocalEngine` embeds on this machine (local_engine.py: worker processes on the CPU, decode workers
for a GPU); `RayEngine` on Ray Data workers, a local Ray or an existing cluster (ray_engine.py).
Both write each shard file as it completes (shards.py), so either resumes an interrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from search_by_image.catalog.keypoint_store import KeypointStore
from search_by_image.catalog.locations import Location
from search_by_image.catalog.thumbnails import Thumbnails
from search_by_image.indexing.shards import ShardFiles
from search_by_image.model.embedder import EmbedderSpec

if TYPE_CHECKING:
    from search_by_image.settings import Settings


class Engine(Protocol):
    @property
    def name(self) -> str:
        """How the run's log line names it (read-only: the engines are frozen dataclasses)."""

    def embed_shards(
        self,
        settings: Settings,
        spec: EmbedderSpec,
        location: Location,
        pending: dict[int, list[str]],
        files: ShardFiles,
        progress: bool,
    ) -> None:
        """Embed each pending shard (number -> paths) and write its file to `files`."""


@dataclass(frozen=True)
class LocalEngine:
    name: str = "local"

    def embed_shards(
        self,
        settings: Settings,
        spec: EmbedderSpec,
        location: Location,
        pending: dict[int, list[str]],
        files: ShardFiles,
        progress: bool,
    ) -> None:
        """Also writes each image's grid thumbnail from the same decode (SBI_THUMBNAILS), and its
        local keypoints where verification can use them (OpenCV installed)."""
        from search_by_image.indexing import local_engine
        from search_by_image.ranking.verifier import available

        thumbnails = Thumbnails(location.saved_dir) if settings.thumbnails else None
        keypoints = KeypointStore(location.saved_dir).create() if available() else None
        local_engine.embed_shards(
            settings, spec, location.images_dir, pending, files, progress, thumbnails, keypoints
        )


@dataclass(frozen=True)
class RayEngine:
    #: an existing cluster, e.g. ray://head:10001; None starts a local Ray
    address: str | None = None
    #: workers embedding at once, one CPU each
    workers: int = 2
    name: str = "ray"

    def embed_shards(
        self,
        settings: Settings,
        spec: EmbedderSpec,
        location: Location,
        pending: dict[int, list[str]],
        files: ShardFiles,
        progress: bool,
    ) -> None:
        """Also writes the thumbnails on a local Ray, whose workers share this disk (SBI_THUMBNAILS)."""
        from search_by_image.indexing import ray_engine  # Ray itself is imported only when it runs

        thumbnails = Thumbnails(location.saved_dir) if settings.thumbnails else None
        ray_engine.embed_shards(
            settings,
            spec,
            location.images_dir,
            pending,
            files,
            progress,
            self.address,
            self.workers,
            thumbnails,
        )
