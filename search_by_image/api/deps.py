"""FastAPI dependencies: the state built once at startup, and who is calling.

Access is a dependency per route (`SearchAccess`, `AdminAccess`), so /docs shows the bearer
scheme on exactly the routes that take it. FastAPI reads a request's form before it solves
dependencies, so an upload is size-limited (UploadSizeLimit) before a missing key is refused.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from search_by_image.api.auth import KeyRecord, KeyStore, Scope
from search_by_image.api.rate_limit import RateLimiter, client_address
from search_by_image.api.urls import ImageUrls
from search_by_image.errors import Forbidden, TooManyRequests, Unauthorized
from search_by_image.serving.collection import Collection
from search_by_image.serving.service import SearchService
from search_by_image.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="API key",
    description="`Authorization: Bearer sbi_...`; create one with "
    "`python -m search_by_image.cli.keys create --scope search|admin`",
)


def get_service(request: Request) -> SearchService:
    return request.app.state.service


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_urls(request: Request) -> ImageUrls:
    return request.app.state.urls


ServiceDep = Annotated[SearchService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
UrlsDep = Annotated[ImageUrls, Depends(get_urls)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Caller:
    key: KeyRecord | None
    address: str

    @property
    def key_id(self) -> str | None:
        """The id of the caller's API key: image URLs in answers are signed for it."""
        return self.key.id if self.key else None

    @property
    def identity(self) -> str:
        return f"key:{self.key.id}" if self.key else f"address:{self.address}"


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: Scope) -> Caller:
    """The caller, or 401 (no or bad key where one is needed) / 403 (key without the scope)."""
    settings: Settings = request.app.state.settings
    keys: KeyStore = request.app.state.keys
    address = client_address(
        request.client.host if request.client else "unknown",
        ", ".join(request.headers.getlist("x-forwarded-for")) or None,
        request.app.state.trusted_proxies,
    )
    needed = scope == "admin" or settings.search_requires_key
    if credentials is None:
        if not needed:
            return Caller(None, address)
        if scope == "admin" and not keys.has_admin():
            raise Unauthorized(
                "this needs an admin API key, and none exists yet: create one with "
                "`python -m search_by_image.cli.keys create --scope admin`"
            )
        raise Unauthorized(f"this needs an API key with scope {scope}: send `Authorization: Bearer <key>`")
    record = keys.verify(credentials.credentials)
    if record is None:
        raise Unauthorized("unknown or revoked API key")
    if scope == "admin" and record.scope != "admin":
        raise Forbidden(f"key {record.id} has scope {record.scope}; this needs scope admin")
    return Caller(record, address)


def _access(scope: Scope, limited: bool):
    def dependency(request: Request, credentials: Credentials) -> Caller:
        caller = authenticate(request, credentials, scope)
        if limited:
            limiter: RateLimiter = request.app.state.limiter
            wait = limiter.wait_seconds(caller.identity)
            if wait is not None:
                raise TooManyRequests(
                    f"too many requests: the limit is {limiter.rule} per client; retry in {wait} s", wait
                )
        return caller

    return dependency


#: Reading: collections, their descriptions. Open unless SBI_SEARCH_REQUIRES_KEY.
ReadAccess = Annotated[Caller, Depends(_access("search", limited=False))]
#: Searching: like reading, and counted by the rate limiter.
SearchAccess = Annotated[Caller, Depends(_access("search", limited=True))]
#: Changing collections: always an admin key, counted by the rate limiter.
AdminAccess = Annotated[Caller, Depends(_access("admin", limited=True))]


def find_collection(service: SearchService, name: str) -> Collection:
    """The named collection, or InvalidName/UnknownCollection (404) that says why."""
    return service.get(name)


def collection_in_path(
    service: ServiceDep, name: Annotated[str, Path(description="collection name")]
) -> Collection:
    return find_collection(service, name)


CollectionDep = Annotated[Collection, Depends(collection_in_path)]
