"""Requests and responses of duplicate review (api/routes/duplicates.py)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

FILTERS_FIELD = Field(
    None,
    description="the groups among the images these filters pass, as in a search: a JSON object "
    '(or its text), e.g. {"album": "2023"}',
)
THRESHOLD_FIELD = Field(
    None, gt=0, le=1, description="the threshold the groups were listed at (default: copy)"
)


class InScope(BaseModel):
    """Which groups an action acts among: the same threshold and filters as the listing."""

    threshold: float | None = THRESHOLD_FIELD
    filters: str | dict[str, Any] | None = FILTERS_FIELD


class KeepOne(InScope):
    group: str = Field(description="the group's fingerprint, as listed", max_length=64)
    keep: int | None = Field(None, ge=0, description="the id to keep (default: the suggested one)")


class KeepAll(InScope):
    group: str = Field(description="the group's fingerprint, as listed", max_length=64)


class ApplySuggestions(InScope):
    confirm: str | None = Field(
        None,
        max_length=64,
        description="absent: a preview of what would be done, with its `token`; the preview's "
        "token: do it (409 if the groups changed since the preview)",
    )


class TrashedImage(BaseModel):
    id: int = Field(description="its id when it was trashed")
    path: str
    bytes: int
    restored_id: int | None = Field(None, description="the id it came back under after an undo")


class DecisionOut(BaseModel):
    id: int
    kind: Literal["keep_one", "keep_all"] = Field(
        description="keep_one: one kept, the rest trashed; keep_all: the images are not duplicates"
    )
    state: Literal["doing", "done", "undone"] = Field(
        description="doing: stopped midway (undo reverses what it did)"
    )
    made_at: str
    keeper: str | None = Field(None, description="keep_one: the kept image's path")
    images: list[str] = Field(description="the paths of the group when it was decided")
    trashed: list[TrashedImage] = []
    merged: dict[str, Any] = Field({}, description="metadata the trashed copies gave the keeper")
    bytes_freed: int = 0


class Decisions(BaseModel):
    collection: str
    decisions: list[DecisionOut] = Field(description="the latest first")


class PlannedGroup(BaseModel):
    group: str
    keep: int
    keep_path: str
    trash: list[int]


class SuggestionsApplied(BaseModel):
    collection: str
    applied: bool = Field(description="false: a preview, nothing done yet")
    groups: int = Field(description="`copies` groups the suggestion applies to")
    images_to_trash: int
    bytes_freed: int = Field(description="the size of the files it trashes")
    token: str = Field(description="send as `confirm` to apply exactly this plan")
    plan: list[PlannedGroup] = Field(description="per group: who is kept, who is trashed")
    decisions: list[DecisionOut] = Field([], description="when applied: the decisions made")
