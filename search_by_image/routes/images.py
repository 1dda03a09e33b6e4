"""GET /images/{path}: the indexed images themselves, for the result grid."""

import posixpath

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from search_by_image.deps import ServiceDep, SettingsDep

router = APIRouter(tags=["images"])


@router.get("/images/{path:path}", summary="An indexed image", response_class=FileResponse)
def indexed_image(path: str, service: ServiceDep, settings: SettingsDep):
    """Only paths that are in the index are served: anything else, `..` tricks included, is a 404."""
    normal = posixpath.normpath(path)
    indexed = service.store is not None and path in service.store.position
    if not indexed or normal.startswith(("..", "/")) or normal != path:
        raise HTTPException(404, "no such indexed image")
    file = settings.images_dir / path
    if not file.is_file():
        raise HTTPException(404, "this image was indexed but is no longer on disk")
    return FileResponse(file)
