"""URLs of indexed images and their thumbnails as the API hands them out: a thumbnail's carries
the image's fingerprint (so it is cacheable for a year), and both are signed where searching needs
a key, since an <img> sends no Authorization header."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from search_by_image.api.auth import UrlSigner
from search_by_image.catalog import thumbnails
from search_by_image.catalog.locations import DEFAULT
from search_by_image.layout import URL_SECRET_FILE
from search_by_image.serving.snapshot import Snapshot
from search_by_image.settings import Settings


class ImageUrls:
    def __init__(self, signer: UrlSigner | None):
        self.signer = signer

    @classmethod
    def for_settings(cls, settings: Settings) -> ImageUrls:
        return cls(UrlSigner(settings.saved_dir / URL_SECRET_FILE) if settings.search_requires_key else None)

    def image(self, collection: str, path: str) -> str:
        return self._file_url("images", collection, path, {})

    def thumbnail(self, snapshot: Snapshot, path: str) -> str:
        """The grid thumbnail's URL, versioned by the image's fingerprint in `snapshot`."""
        fingerprint = snapshot.store.manifest.files.get(path)
        version = thumbnails.version(path, fingerprint) if fingerprint else "0"
        return self._file_url("thumbnails", snapshot.name, path, {"v": version})

    def _file_url(self, route: str, collection: str, path: str, query: dict[str, str]) -> str:
        if collection != DEFAULT:
            query["collection"] = collection
        if self.signer is not None:
            expiry, signature = self.signer.sign(collection, path)
            query["exp"], query["sig"] = str(expiry), signature
        return f"/{route}/{quote(path)}" + (f"?{urlencode(query)}" if query else "")
