"""FastAPI dependencies for the state built once at startup."""

from typing import Annotated

from fastapi import Depends, Request

from config import Settings
from search_by_image.service import SearchService


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
