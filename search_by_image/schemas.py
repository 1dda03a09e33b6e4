"""Response models of the HTTP API (they are what /docs shows)."""

from typing import Any, Literal

from pydantic import BaseModel, Field


class SearchHit(BaseModel):
    rank: int = Field(description="1 = most similar")
    path: str = Field(description="path relative to the images folder")
    score: float = Field(description="cosine similarity in [-1, 1]; 1 = identical descriptor")
    image_url: str
    metadata: dict[str, Any] = Field(description="the image's row of the metadata CSV, if any")


class Timing(BaseModel):
    decode_ms: float
    embed_ms: float
    search_ms: float
    total_ms: float


class QueryInfo(BaseModel):
    filename: str | None
    width: int
    height: int


class SearchResponse(BaseModel):
    query: QueryInfo
    k: int
    model: str
    results: list[SearchHit]
    timing: Timing


class Health(BaseModel):
    status: Literal["ok", "no_index"]
    images: int
    model: str | None
    device: str | None
    detail: str | None = None


class ServiceInfo(BaseModel):
    name: str
    version: str
    images: int
    model: str | None
    endpoints: dict[str, str]
