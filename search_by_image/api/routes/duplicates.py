"""Duplicate groups of a collection and their review: list them (JSON or the page), keep one and
trash the rest, keep all ("not duplicates"), apply the suggestion to every `copies` group (a
preview first), list and undo decisions (serving/duplicate_review.py)."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from search_by_image.api.deps import (
    AdminAccess,
    CollectionDep,
    ReadAccess,
    SearchAccess,
    SettingsDep,
    UrlsDep,
)
from search_by_image.api.pages import render_duplicates_page, render_duplicates_pending, wants_html
from search_by_image.api.review_schemas import (
    ApplySuggestions,
    DecisionOut,
    Decisions,
    InScope,
    KeepAll,
    KeepOne,
    PlannedGroup,
    SuggestionsApplied,
    TrashedImage,
)
from search_by_image.api.routes.collections import WRITE_ERRORS
from search_by_image.api.routes.search import FILTERS_HELP
from search_by_image.api.schemas import DuplicateGroup, DuplicateImage, Duplicates
from search_by_image.catalog.filters import parse_filters
from search_by_image.catalog.review_decisions import Decision
from search_by_image.errors import DuplicatesPending
from search_by_image.ranking.duplicates import default_threshold
from search_by_image.ranking.keepers import RULE
from search_by_image.ranking.match_kinds import COPY_DEFAULTS
from search_by_image.serving.duplicate_review import Reviewed, Scope, review_of

router = APIRouter(prefix="/collections", tags=["duplicates"])

MAX_GROUPS_PER_PAGE = 500
ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **WRITE_ERRORS,
    404: {"description": "No such collection, image or decision"},
    409: {"description": "The group (or collection) changed since it was listed: reload and decide again"},
    422: {"description": "A filter the collection cannot apply, or a malformed body"},
}


def _scope(body: InScope) -> Scope:
    filters = json.dumps(body.filters) if isinstance(body.filters, dict) else body.filters
    return Scope(body.threshold, parse_filters(filters))


def _decision(decision: Decision) -> DecisionOut:
    return DecisionOut(
        id=decision.id,
        kind=decision.kind,
        state=decision.state,
        made_at=decision.made_at,
        keeper=decision.keeper,
        images=decision.paths,
        trashed=[
            TrashedImage(id=t.image_id, path=t.path, bytes=t.bytes, restored_id=t.restored_id)
            for t in decision.trashed
        ],
        merged=decision.merged,
        bytes_freed=sum(t.bytes for t in decision.trashed if t.restored_id is None),
    )


def _group(reviewed: Reviewed, urls, collection: str, snapshot, key_id: str | None) -> DuplicateGroup:
    group = reviewed.group
    return DuplicateGroup(
        kind=group.kind,
        best=round(group.best, 4),
        weakest=round(group.weakest, 4),
        fingerprint=group.fingerprint,
        suggested=reviewed.keeper.id,
        images=[
            DuplicateImage(
                id=f.id,
                path=f.path,
                image_url=urls.image(collection, f.path, key_id),
                thumbnail_url=urls.thumbnail(snapshot, f.path, key_id),
                width=f.width,
                height=f.height,
                bytes=f.bytes,
                taken=f.taken.isoformat() if f.taken else None,
            )
            for f in reviewed.facts
        ],
    )


@router.get(
    "/{name}/duplicates",
    response_model=Duplicates,
    responses={
        202: {"description": "The collection's duplicates pass is running: how far it has got; ask again"},
        404: WRITE_ERRORS[404],
        422: ACTION_ERRORS[422],
        503: {"description": "No index yet"},
    },
    summary="Groups of near-duplicate images in a collection, with the keeper each suggests",
    description="JSON, or the review page when the request accepts text/html. Pairs decided "
    '"not duplicates" are never grouped. The first request after the index is built starts the '
    "collection's pass (minutes on a big collection): while it runs past a few seconds the answer "
    "is 202 with its progress and Retry-After.",
)
async def duplicates(
    request: Request,
    caller: SearchAccess,
    urls: UrlsDep,
    collection: CollectionDep,
    threshold: Annotated[
        float | None,
        Query(
            gt=0,
            le=1,
            description=f"similarity above which images are duplicates, in score units ({COPY_DEFAULTS})",
        ),
    ] = None,
    filters: Annotated[str | None, Query(description=FILTERS_HELP)] = None,
    image: Annotated[int | None, Query(ge=0, description="only the group of this image")] = None,
    offset: Annotated[int, Query(ge=0, description="groups to skip (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS_PER_PAGE, description="groups per page")] = 50,
) -> Duplicates:
    """Counted by the rate limiter like a search. The first request after the index changes
    starts the collection's pass (duplicate_groups.py); any threshold is then answered from it."""
    review = review_of(collection)
    try:
        snapshot, every_group = await run_in_threadpool(
            review.groups, Scope(threshold, parse_filters(filters))
        )
    except DuplicatesPending as pending:  # JSON: 202 with its progress, from the one handler
        if wants_html(request):
            return render_duplicates_pending(request, collection.name, pending)
        raise
    if image is not None:
        every_group = [g for g in every_group if any(i == image for i, _ in g.images)]
    shown = await run_in_threadpool(
        lambda: [review.reviewed(g) for g in every_group[offset : offset + limit]]
    )
    found = Duplicates(
        collection=collection.name,
        threshold=default_threshold(snapshot.store) if threshold is None else threshold,
        total=len(every_group),
        images_in_groups=sum(len(g.images) for g in every_group),
        offset=offset,
        rule=RULE,
        groups=[_group(r, urls, collection.name, snapshot, caller.key_id) for r in shown],
    )
    if wants_html(request):
        listed = await run_in_threadpool(review.decisions.listed, 20)
        decisions = [_decision(d) for d in listed]
        return render_duplicates_page(request, found, len(snapshot.store), limit, filters, decisions)
    return found


@router.post(
    "/{name}/duplicates/keep-one",
    response_model=DecisionOut,
    responses=ACTION_ERRORS,
    summary="Keep one image of a group, move the others to the trash (undoable)",
    description="The trashed copies' metadata fills the keeper's empty values.",
)
async def keep_one(_: AdminAccess, collection: CollectionDep, body: KeepOne) -> DecisionOut:
    review = review_of(collection)
    return _decision(await run_in_threadpool(review.keep_one, body.group, body.keep, _scope(body)))


@router.post(
    "/{name}/duplicates/keep-all",
    response_model=DecisionOut,
    responses=ACTION_ERRORS,
    summary='Keep every image of a group: "not duplicates", remembered until undone',
    description="Each pair of the group is remembered by the images' paths, across restarts and re-indexes.",
)
async def keep_all(_: AdminAccess, collection: CollectionDep, body: KeepAll) -> DecisionOut:
    review = review_of(collection)
    return _decision(await run_in_threadpool(review.keep_all, body.group, _scope(body)))


@router.post(
    "/{name}/duplicates/apply-suggestions",
    response_model=SuggestionsApplied,
    responses=ACTION_ERRORS,
    summary="Apply the suggested keeper to every `copies` group: a preview, then with `confirm` done",
)
async def apply_suggestions(
    _: AdminAccess, collection: CollectionDep, body: ApplySuggestions
) -> SuggestionsApplied:
    review = review_of(collection)
    scope = _scope(body)
    chosen, token = await run_in_threadpool(review.plan, scope)
    decisions = []
    if body.confirm is not None:
        decisions = await run_in_threadpool(review.apply_plan, scope, body.confirm)
    return SuggestionsApplied(
        collection=collection.name,
        applied=body.confirm is not None,
        groups=len(chosen),
        images_to_trash=sum(len(r.facts) - 1 for r in chosen),
        bytes_freed=sum(f.bytes for r in chosen for f in r.facts if f.id != r.keeper.id),
        token=token,
        plan=[
            PlannedGroup(
                group=r.group.fingerprint,
                keep=r.keeper.id,
                keep_path=r.keeper.path,
                trash=[f.id for f in r.facts if f.id != r.keeper.id],
            )
            for r in chosen
        ],
        decisions=[_decision(d) for d in decisions],
    )


@router.get(
    "/{name}/duplicates/decisions",
    response_model=Decisions,
    responses={404: WRITE_ERRORS[404]},
    summary="The review decisions of a collection, latest first",
)
async def decisions(
    _: ReadAccess,
    collection: CollectionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Decisions:
    listed = await run_in_threadpool(review_of(collection).decisions.listed, limit)
    return Decisions(collection=collection.name, decisions=[_decision(d) for d in listed])


@router.post(
    "/{name}/duplicates/decisions/{number}/undo",
    response_model=DecisionOut,
    responses=ACTION_ERRORS,
    summary="Undo a decision: trashed images restored (ids, metadata, search), or the pairs forgotten",
)
async def undo(
    _: AdminAccess,
    settings: SettingsDep,
    collection: CollectionDep,
    number: Annotated[int, Path(ge=1, description="the decision's id")],
) -> DecisionOut:
    review = review_of(collection)
    return _decision(await run_in_threadpool(review.undo, number, settings.max_image_pixels))
