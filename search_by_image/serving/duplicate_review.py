"""Resolving duplicate groups: the suggested keeper, keep one and trash the rest, keep all ("not
duplicates"), undo, each decision remembered in the collection's database
(catalog/review_decisions.py).

An action names its group by the fingerprint the client was shown (duplicates.Group.fingerprint);
it is answered Conflict (409) when no current group has it: an image was added, deleted or
decided since, or the index changed. Images are trashed and restored through the collection's
live writes (live_writes.py: journaled, atomic commits), all of one action under the collection's
lock, so no other live write of this service interleaves; an indexer run in another process makes
the action wait for the writer lock or fail as busy, with what was done recorded and undoable.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_by_image.catalog.filters import Condition
from search_by_image.catalog.review_decisions import Decision, ReviewDecisions, Trashed
from search_by_image.errors import Conflict, UnknownImage
from search_by_image.images import formats
from search_by_image.images.rejections import decode_upload
from search_by_image.index.live_store import LiveStore
from search_by_image.ranking import keepers
from search_by_image.ranking.collapse import CopySets
from search_by_image.ranking.duplicates import Group
from search_by_image.serving.collection import Collection
from search_by_image.serving.duplicate_groups import PASS_WAIT_S
from search_by_image.serving.live_writes import Upload
from search_by_image.serving.snapshot import Snapshot

log = logging.getLogger(__name__)


class UnknownDecision(UnknownImage):
    """No decision by that number in this collection."""


@dataclass(frozen=True)
class Reviewed:
    """A group with the facts of its images (in the group's order) and the suggested keeper."""

    group: Group
    facts: list[keepers.Facts]
    keeper: keepers.Facts


@dataclass(frozen=True)
class Scope:
    """Which groups: the threshold (None: the default) and the filters of a search."""

    threshold: float | None = None
    conditions: dict[str, Condition] | None = None


def _blank(value: Any) -> bool:
    try:
        return value is None or value == "" or bool(value != value)  # NaN
    except (TypeError, ValueError):  # pandas' NA has no truth value
        return True


def clean(row: dict[str, Any]) -> dict[str, Any]:
    """A metadata row with every missing value as None."""
    return {key: None if _blank(value) else value for key, value in row.items()}


def id_in(store: LiveStore) -> Callable[[str], int | None]:
    """A path's id in `store` (None: not indexed)."""
    return store.id_of


class DuplicateReview:
    """The review of one collection's duplicate groups."""

    def __init__(self, collection: Collection):
        self.collection = collection
        self.decisions = ReviewDecisions(collection.location.saved_dir)
        self._grouping = threading.Lock()
        #: ((index generation, decisions version), image id -> copies group number)
        self._copy_groups: tuple[tuple[str, int], CopySets] | None = None

    def groups(self, scope: Scope, wait_s: float | None = PASS_WAIT_S) -> tuple[Snapshot, list[Group]]:
        """The current groups in `scope`, without the pairs decided apart (DuplicatesPending
        while the collection's pass runs past `wait_s`)."""
        snapshot = self.collection.require()
        apart = self.decisions.apart_ids(id_in(snapshot.store))
        allowed = snapshot.allowed(scope.conditions or {})
        inside = None if allowed is None else set(allowed.tolist())

        def keep(a: int, b: int) -> bool:
            if inside is not None and (a not in inside or b not in inside):
                return False
            return (min(a, b), max(a, b)) not in apart

        filtered = None if allowed is None else hashlib.sha256(allowed.tobytes()).hexdigest()
        return self.collection.duplicates(scope.threshold, keep, (frozenset(apart), filtered), wait_s)

    def copy_groups(self, snapshot: Snapshot, wait: bool = False) -> CopySets | None:
        """Each image in a `copies` group (the default threshold, pairs decided apart left
        apart) -> its group's number, for collapsing results. Unless `wait`: None until they
        are computed for `snapshot`'s index, which a background thread then does (once at a
        time), so no search waits for a pass over the collection."""
        wanted = (snapshot.store.manifest.generation, self.decisions.version)
        if wait:
            self._group_copies()
        known = self._copy_groups
        if known is not None and known[0] == wanted:
            return known[1]
        if not wait and not self._grouping.locked():
            threading.Thread(
                target=self._group_copies, name=f"copies-{self.collection.name}", daemon=True
            ).start()
        return None

    def _group_copies(self) -> None:
        if not self._grouping.acquire(blocking=False):
            return
        try:
            version = self.decisions.version
            snapshot, groups = self.groups(Scope(), wait_s=None)  # on its own thread: waits
            found = {i: n for n, g in enumerate(groups) if g.kind == "copies" for i, _ in g.images}
            apart = frozenset(self.decisions.apart_ids(snapshot.store.id_of))
            self._copy_groups = ((snapshot.store.manifest.generation, version), CopySets(found, apart))
        except Exception:  # noqa: BLE001 - collapsing waits for the next try; searches go on
            log.exception("Collection %s: could not group copies", self.collection.name)
        finally:
            self._grouping.release()

    def reviewed(self, group: Group) -> Reviewed:
        location = self.collection.location
        facts = [keepers.facts(i, p, location.served_file(p)) for i, p in group.images]
        return Reviewed(group, facts, keepers.suggested(facts))

    def find(self, fingerprint: str, scope: Scope) -> tuple[Snapshot, Group]:
        snapshot, groups = self.groups(scope)
        for group in groups:
            if group.fingerprint == fingerprint:
                return snapshot, group
        raise Conflict(
            f"no duplicate group {fingerprint!r} in collection {self.collection.name!r} now: it changed "
            "since it was shown (an image added, deleted or decided, or the index rebuilt); reload"
        )

    def keep_one(self, fingerprint: str, keep: int | None, scope: Scope) -> Decision:
        """Keep `keep` (default: the suggestion), trash the others of the group, merge their
        metadata into the keeper where it has no value."""
        snapshot, group = self.find(fingerprint, scope)
        with self.collection.lock:
            self._unchanged(snapshot)
            return self._keep_one(snapshot, self.reviewed(group), keep)

    def keep_all(self, fingerprint: str, scope: Scope) -> Decision:
        """Remember every pair of the group as not duplicates."""
        _, group = self.find(fingerprint, scope)
        decision = self.decisions.keep_all([path for _, path in group.images])
        return self._get(decision)

    def plan(self, scope: Scope) -> tuple[list[Reviewed], str]:
        """The suggestion for every `copies` group in scope, and a token naming that plan."""
        _, groups = self.groups(scope)
        chosen = [self.reviewed(g) for g in groups if g.kind == "copies"]
        text = ";".join(f"{r.group.fingerprint}:{r.keeper.id}" for r in chosen)
        return chosen, hashlib.sha256(text.encode()).hexdigest()[:16]

    def apply_plan(self, scope: Scope, token: str) -> list[Decision]:
        """Apply the suggestion to every `copies` group, if the plan is still the one previewed
        as `token` (Conflict if not: preview again)."""
        snapshot = self.collection.require()
        chosen, current = self.plan(scope)
        if current != token:
            raise Conflict("the duplicate groups changed since the preview; preview again before applying")
        with self.collection.lock:
            self._unchanged(snapshot)
            return [self._keep_one(self.collection.require(), r, None) for r in chosen]

    def undo(self, number: int, max_pixels: int) -> Decision:
        """Reverse a decision: pairs forgotten (keep all), or trashed images restored with their
        ids where free, their metadata, and the keeper's metadata as it was (keep one)."""
        decision = self._get(number)
        if decision.state == "undone":
            raise Conflict(f"decision {number} is already undone")
        if decision.kind == "keep_one":
            with self.collection.lock:
                for trashed in decision.trashed:
                    if trashed.restored_id is None and trashed.trashed_to is not None:
                        self._restore(number, trashed, max_pixels)
                self._unmerge(decision)
        self.decisions.undone(number)
        return self._get(number)

    def _get(self, number: int) -> Decision:
        decision = self.decisions.get(number)
        if decision is None:
            raise UnknownDecision(f"collection {self.collection.name!r} has no decision {number}")
        return decision

    def _unchanged(self, snapshot: Snapshot) -> None:
        """Conflict when the index changed since `snapshot` (caller holds the collection's lock)."""
        self.collection.refresh()
        now = self.collection.require().store.manifest.generation
        if now != snapshot.store.manifest.generation:
            raise Conflict(f"collection {self.collection.name!r} changed meanwhile; reload and decide again")

    def _keep_one(self, snapshot: Snapshot, reviewed: Reviewed, keep: int | None) -> Decision:
        ids = [i for i, _ in reviewed.group.images]
        keeper_id = reviewed.keeper.id if keep is None else keep
        if keeper_id not in ids:
            raise UnknownImage(f"image {keeper_id} is not in duplicate group {reviewed.group.fingerprint!r}")
        keeper = snapshot.store.path_of(keeper_id)
        kept_row = clean(snapshot.metadata.for_id(keeper_id))
        paths = [p for _, p in reviewed.group.images]
        number = self.decisions.begin_keep_one(keeper, kept_row, paths)
        merged: dict[str, Any] = {}
        trashed = 0
        try:
            for facts in sorted(reviewed.facts, key=keepers.Facts.rank):
                if facts.id == keeper_id:
                    continue
                row = clean(snapshot.metadata.for_id(facts.id))
                path, trashed_to = self.collection.delete(facts.id)
                kept_at = None if trashed_to is None else str(trashed_to)
                self.decisions.add_trashed(number, Trashed(path, facts.id, kept_at, facts.bytes, row))
                trashed += 1
                for column, value in row.items():
                    if value is not None and kept_row.get(column) is None and column not in merged:
                        merged[column] = value
        except BaseException:
            if not trashed:  # nothing done (busy, say): no decision to undo
                self.decisions.discard(number)
            raise
        if merged:
            self.collection.writes.set_metadata(keeper_id, {**kept_row, **merged})
        self.decisions.finish(number, merged)
        return self._get(number)

    def _restore(self, number: int, trashed: Trashed, max_pixels: int) -> None:
        source = Path(str(trashed.trashed_to))
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise Conflict(f"the trashed file of {trashed.path!r} cannot be read: {exc}") from exc
        snapshot = self.collection.require()
        image = decode_upload(data, max_pixels, snapshot.embedder.preprocessing.resized_size)
        found = formats.identify(data)
        upload = Upload(data, image, found.name if found else "JPEG", trashed.metadata or None)
        added = self.collection.writes.restore(upload, trashed.path, source, trashed.image_id)
        self.decisions.restored(number, trashed.path, added.id)

    def _unmerge(self, decision: Decision) -> None:
        """The keeper's metadata without what the copies gave it (values since changed stay)."""
        if not decision.merged or decision.keeper is None:
            return
        store = self.collection.require().store
        keeper_id = store.id_of(decision.keeper)
        if keeper_id is None:
            return
        row = clean(self.collection.require().metadata.for_id(keeper_id))
        for column, value in decision.merged.items():
            if column in row and str(row[column]) == str(value):
                row[column] = None
        self.collection.writes.set_metadata(keeper_id, row)


_reviews: weakref.WeakKeyDictionary[Collection, DuplicateReview] = weakref.WeakKeyDictionary()
_reviews_lock = threading.Lock()


def review_of(collection: Collection) -> DuplicateReview:
    """The one review of `collection` (its database connection is opened once)."""
    with _reviews_lock:
        review = _reviews.get(collection)
        if review is None:
            review = _reviews[collection] = DuplicateReview(collection)
        return review
