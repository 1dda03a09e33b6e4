"""URLs of indexed images and their thumbnails as the API hands them out: a thumbnail's carries
the image's fingerprint (so it is cacheable for a year), and both are signed where searching needs
a key, since an <img> sends no Authorization header."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from search_by_image.api.auth import KeyStore, UrlKind, UrlSigner
from search_by_image.catalog import thumbnails
from search_by_image.catalog.locations import DEFAULT
from search_by_image.layout import URL_SECRET_FILE
from search_by_image.serving.snapshot import Snapshot
from search_by_image.settings import Settings


class ImageUrls:
    def __init__(self, signer: UrlSigner | None):
        self.signer = signer

    @classmethod
    def for_settings(cls, settings: Settings, keys: KeyStore) -> ImageUrls:
        """`keys`: the app's key store, whose keys signed URLs must still be in."""
        if not settings.search_requires_key:
            return cls(None)
        return cls(UrlSigner(settings.saved_dir / URL_SECRET_FILE, keys))

    def image(self, collection: str, path: str, key_id: str | None = None) -> str:
        return self._file_url("images", collection, path, {}, key_id)

    def thumbnail(self, snapshot: Snapshot, path: str, key_id: str | None = None) -> str:
        """The grid thumbnail's URL, versioned by the image's fingerprint in `snapshot`."""
        fingerprint = snapshot.store.fingerprint(path)
        version = thumbnails.version(path, fingerprint) if fingerprint else "0"
        return self._file_url("thumbnails", snapshot.name, path, {"v": version}, key_id)

    def _file_url(
        self, route: UrlKind, collection: str, path: str, query: dict[str, str], key_id: str | None
    ) -> str:
        """Signed for `key_id`, the key of the request that asked for it (auth.UrlSigner), where
        searching needs a key: revoking that key closes its URLs."""
        if collection != DEFAULT:
            query["collection"] = collection
        if self.signer is not None and key_id is not None:
            expiry, signature = self.signer.sign(route, collection, path, key_id)
            query["key"], query["exp"], query["sig"] = key_id, str(expiry), signature
        return f"/{route}/{quote(path)}" + (f"?{urlencode(query)}" if query else "")
