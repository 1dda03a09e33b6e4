"""FastAPI dependencies for the state built once at startup."""

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from config import Settings
from search_by_image.catalog import InvalidName, UnknownCollection
from search_by_image.collection import Collection
from search_by_image.service import SearchService


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def find_collection(service: SearchService, name: str) -> Collection:
    """The named collection, or a 404 that says why (bad name, or which names exist)."""
    try:
        return service.get(name)
    except (InvalidName, UnknownCollection) as exc:
        raise HTTPException(404, str(exc)) from exc


def collection_in_path(
    service: ServiceDep, name: Annotated[str, Path(description="collection name")]
) -> Collection:
    return find_collection(service, name)


CollectionDep = Annotated[Collection, Depends(collection_in_path)]
