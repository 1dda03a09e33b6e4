"""What an indexer run reports: its counts when it ends (`IndexReport`), how far it has got
while it runs (`Progress`, shown by /health), and why it refuses options (`spec_mismatch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from search_by_image.errors import SpecMismatch
from search_by_image.model.embedder import EmbedderSpec


@dataclass
class IndexReport:
    total: int = 0
    embedded: int = 0
    #: images embedded by an earlier, interrupted run (its shard files)
    resumed: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    written: bool = False

    def summary(self) -> str:
        rate = self.embedded / self.seconds if self.seconds and self.embedded else 0.0
        return (
            f"{self.total} images indexed: {self.embedded} embedded ({rate:.1f} img/s), "
            f"{self.reused} unchanged, {self.removed} removed, {len(self.skipped)} skipped "
            "as unreadable"
            + (f", {self.resumed} from an interrupted run" if self.resumed else "")
            + ("" if self.written else "; index already up to date")
        )


#: A run's phases in order; `keypoints`: the local keypoints of indexed images that have none
#: stored are computed (keypoint_fill.py: an index built before the store, a Ray run).
Phase = Literal["waiting", "scanning", "embedding", "writing", "keypoints", "finished"]


@dataclass
class Progress:
    """How far a run has got, updated as it goes (the service's /health shows it): its phase, and
    images done of the `total` that phase has to do (embedding: embedded or skipped as
    unreadable; keypoints: computed)."""

    phase: Phase = "waiting"
    done: int = 0
    total: int = 0


def spec_mismatch(collection: str, count: int, built: EmbedderSpec, asked: EmbedderSpec) -> SpecMismatch:
    """What changed between the spec a collection was built with and the one asked for now."""
    old, new = built.model_dump(), asked.model_dump()
    changes = [f"{key}: {old[key]} -> {new[key]}" for key in new if old.get(key) != new[key]]
    return SpecMismatch(
        f"collection {collection!r} was indexed with other options ({'; '.join(changes)}). "
        f"Run again with --rebuild to embed all {count} images the new way, or use the "
        "options it was built with: queries are always processed like their collection"
    )
