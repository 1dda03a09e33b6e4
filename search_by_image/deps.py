"""FastAPI dependencies for the state built once at startup."""

from typing import Annotated

from fastapi import Depends, Request

from config import Settings, get_settings
from search_by_image.service import SearchService


def get_service(request: Request) -> SearchService:
    return request.app.state.service


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
