"""Response models of the HTTP API (they are what /docs shows)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from search_by_image.catalog.metadata import ColumnInfo
from search_by_image.catalog.unreadable import UnreadableFiles
from search_by_image.indexing.background import IndexingStatus
from search_by_image.model.preprocessing import Preprocessing
from search_by_image.ranking.match_kinds import MatchKind
from search_by_image.serving.service import LoadingStatus


class SearchHit(BaseModel):
    rank: int = Field(description="1 = most similar")
    id: int = Field(description="the image's stable id in its collection")
    path: str = Field(description="path relative to the images folder")
    score: float = Field(description="cosine similarity in [-1, 1]; 1 = identical descriptor")
    match: MatchKind = Field(
        description="copy: the same photo, edited (cropped, rotated, recoloured, rescaled, "
        "recompressed, mirrored, framed or captioned), or a near-identical shot; "
        "similar: likely the same scene or object; weak: likely no real match. "
        "The top results (setting verify_top) are labelled by local verification, "
        "the rest by their score: search_by_image/ranking/match_kinds.py"
    )
    inliers: int | None = Field(
        None,
        description="keypoints of the query and this image that one geometric transform "
        "matches (12 or more: the same scene, ranked higher); null: not verified",
    )
    image_url: str
    thumbnail_url: str = Field(description="a JPEG at most 448 px on its longest side, for grids")
    metadata: dict[str, Any] = Field(description="the image's row of the metadata CSV, if any")
    copies: int = Field(0, description="with collapse=copies: how many copies of it were folded into it")
    copies_url: str | None = Field(None, description="where they are: more like this image, copies first")


class Timing(BaseModel):
    decode_ms: float
    embed_ms: float
    search_ms: float
    verify_ms: float = Field(0.0, description="checking the top results with local features")
    total_ms: float


class QueryInfo(BaseModel):
    filename: str | None = Field(
        description="the upload's file name, the `url` searched by, or the path of the image "
        "searched from (similar)"
    )
    width: int | None = Field(
        description="width of what was searched (the region, when a box was "
        "given); null for a search from an indexed image (not decoded)"
    )
    height: int | None
    id: int | None = Field(None, description="the indexed image searched from (similar), else null")
    box: list[int] | None = Field(
        None, description="the region searched, in pixels of the uploaded image: left, top, right, bottom"
    )


class SearchResponse(BaseModel):
    query: QueryInfo
    collection: str
    k: int
    offset: int = Field(0, description="results skipped before these (paging): rank = offset + 1...")
    matched: int | None = Field(None, description="images that pass the filters (null when none were given)")
    model: str
    results: list[SearchHit]
    timing: Timing


class CollectionSummary(BaseModel):
    name: str
    status: Literal["ok", "loading", "no_index"] = Field(
        description="loading: the service has just started and is loading its index"
    )
    images: int
    model: str | None
    runtime: str | None = Field(None, description="how its queries are embedded, e.g. onnx int8")
    index_type: str | None = Field(None, description="the FAISS index_factory string")
    search_device: str | None = Field(None, description="where FAISS searches it: cpu or cuda:N")
    detail: str | None = Field(None, description="why the collection is not searchable")
    storage: str = Field(
        "saved folder",
        description="where its vectors live: the saved folder (embedded), or the vector engine "
        "(milvus://host:port) shared by the service's replicas",
    )
    engine_answers: bool | None = Field(
        None, description="for a collection in a vector engine: whether the engine answered just now"
    )


class CollectionInfo(CollectionSummary):
    columns: list[ColumnInfo] = Field(description="metadata columns that filters can use")
    unreadable: UnreadableFiles = Field(
        default_factory=UnreadableFiles,
        description="files of its images folder that the last indexer run could not read, and why",
    )
    preprocessing: Preprocessing | None = Field(
        None, description="how its images, and every query to it, are prepared for the model"
    )
    pooling: str | None = None


class CollectionList(BaseModel):
    collections: list[CollectionSummary]


class AddedImage(BaseModel):
    id: int
    path: str = Field(description="where it was stored, relative to the images folder")
    image_url: str
    thumbnail_url: str
    created: bool = Field(description="false when the same image was already in the collection")


class WriteTiming(BaseModel):
    """Where a live add or delete spent its time, in the server."""

    decode_ms: float = Field(0.0, description="decoding the uploads (adds)")
    embed_ms: float = Field(0.0, description="the model's forward pass (adds)")
    write_ms: float = Field(
        description="everything else: files and thumbnails written, the database transaction "
        "committed, the new snapshot made searchable"
    )
    total_ms: float


class AddedImages(BaseModel):
    collection: str
    images: list[AddedImage]
    timing: WriteTiming


class DeletedImage(BaseModel):
    collection: str
    id: int
    path: str
    trashed_to: str | None = Field(description="where the file was moved (null if it was gone)")
    timing: WriteTiming


class Health(BaseModel):
    status: Literal["ok", "loading", "indexing", "no_index"] = Field(
        description="ok: something is searchable; loading: the service has just started and loads "
        "its indexes (searches answer 503 with Retry-After meanwhile); indexing: nothing yet, a "
        "first index is being built"
    )
    images: int = Field(description="images in the default collection")
    model: str | None
    device: str | None = Field(description="where the model runs: cpu or cuda:N")
    detail: str | None = None
    loading: LoadingStatus | None = Field(None, description="while the service loads its indexes")
    indexing: IndexingStatus | None = Field(
        None, description="the service's own indexer run (SBI_INDEX_ON_START): state and progress"
    )
    collections: list[CollectionSummary]


class ServiceInfo(BaseModel):
    name: str
    version: str
    images: int = Field(description="images in the default collection")
    model: str | None
    collections: list[str]
    endpoints: dict[str, str]


class DuplicateImage(BaseModel):
    id: int
    path: str
    image_url: str
    thumbnail_url: str
    width: int = Field(0, description="pixels across (0: the header cannot be read)")
    height: int = 0
    bytes: int = Field(0, description="the file's size")
    taken: str | None = Field(None, description="when it was shot (EXIF), if known")


class DuplicateGroup(BaseModel):
    kind: Literal["copies", "similar"] = Field(
        description="copies: every link at copy strength (the same shot, edited, or a near-identical "
        "one); similar: joined by weaker links (the same scene, another shot)"
    )
    best: float = Field(description="the highest similarity between two members")
    weakest: float = Field(description="the lowest similarity among the links that joined the group")
    fingerprint: str = Field(
        "", description="names the group as it is now; actions send it back (409 once the group changed)"
    )
    suggested: int | None = Field(None, description="the id the keeper rule suggests keeping (`rule`)")
    images: list[DuplicateImage]


class Duplicates(BaseModel):
    collection: str
    threshold: float
    total: int = Field(description="groups at this threshold, all pages together")
    images_in_groups: int = Field(description="images in those groups, all pages together")
    offset: int = Field(description="groups skipped before these (paging), largest groups first")
    rule: str = Field("", description="how the suggested keeper of each group is chosen")
    groups: list[DuplicateGroup] = Field(description="at most `limit` groups from `offset` on")
