"""API keys and scopes: who may search, who may change collections.

A key reads `sbi_<id>_<secret>`: the id finds its record, the secret (32 random bytes) is checked
against a salted SHA-256 with a constant-time compare. Slow password hashes (scrypt, bcrypt) exist
to protect low-entropy passwords; a 256-bit random secret is already beyond brute force with one
SHA-256, and that keeps the check per request in microseconds.

Records live in `saved/api_keys.json` (mode 0640, written atomically) and are re-read when the
file changes, so `python -m search_by_image.cli.keys create/revoke` applies to a running service at
once. Scopes: `search` (search, list collections, fetch images) and `admin` (all of that plus
adding, deleting and managing images). Search is open without a key unless
`SBI_SEARCH_REQUIRES_KEY=true`; writes always need an admin key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from itsdangerous import Signer
from pydantic import BaseModel

Scope = Literal["search", "admin"]
#: What a signed URL opens: the original (`/images/...`) or its grid thumbnail (`/thumbnails/...`).
UrlKind = Literal["images", "thumbnails"]
PREFIX = "sbi"
#: How long a signed image URL stays valid (the result page's lifetime, not a session's).
URL_LIFETIME_S = 3600
#: Expiry times are rounded up to a multiple of this, so every search within one such window signs
#: an image with the same URL and the browser's cached thumbnail (a year, immutable) is used instead
#: of a new download per search; a URL is then valid for 1 to 2 hours.
URL_EXPIRY_STEP_S = 3600


class KeyRecord(BaseModel):
    id: str
    scope: Scope
    label: str = ""
    salt: str
    hash: str
    created: datetime


class _KeyFile(BaseModel):
    keys: list[KeyRecord] = []


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _write_private(path: Path, text: str) -> None:
    """Atomic write of a file that others cannot read. Its group can: a container created again
    with another uid of the same group (OpenShift runs arbitrary uids in group 0) still reads the
    keys its volume holds (salted hashes of 256-bit secrets) and its URL-signing secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staged, path)


class KeyStore:
    def __init__(self, path: Path):
        self.path = path
        self._records: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _current(self) -> dict[str, KeyRecord]:
        """The records, re-read when the file changed (one stat per call)."""
        try:
            info = self.path.stat()
            stamp = (info.st_ino, info.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                keys = _KeyFile.model_validate_json(self.path.read_text()).keys if stamp else []
                self._records, self._stamp = {r.id: r for r in keys}, stamp
            return self._records

    def records(self) -> list[KeyRecord]:
        return sorted(self._current().values(), key=lambda r: r.created)

    def _save(self, records: list[KeyRecord]) -> None:
        _write_private(self.path, _KeyFile(keys=records).model_dump_json(indent=1))

    def create(self, scope: Scope, label: str = "") -> tuple[KeyRecord, str]:
        """A new key; the returned string is the only time its secret exists in clear."""
        key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_hex(16)
        record = KeyRecord(
            id=key_id,
            scope=scope,
            label=label,
            salt=salt,
            hash=_digest(salt, secret),
            created=datetime.now(UTC),
        )
        self._save([*self.records(), record])
        return record, f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        records = self.records()
        kept = [r for r in records if r.id != key_id]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True

    def verify(self, key: str) -> KeyRecord | None:
        """The record of a valid key, else None (unknown, revoked or malformed)."""
        prefix, _, rest = key.partition("_")
        key_id, _, secret = rest.partition("_")
        record = self._current().get(key_id) if prefix == PREFIX else None
        if record is None or not secret:
            return None
        return record if hmac.compare_digest(record.hash, _digest(record.salt, secret)) else None

    def get(self, key_id: str) -> KeyRecord | None:
        """The record of a key id that exists now (not revoked), else None."""
        return self._current().get(key_id)

    def has_admin(self) -> bool:
        return any(r.scope == "admin" for r in self._current().values())


class UrlSigner:
    """Signed image URLs, for pages whose <img> tags cannot send an Authorization header.

    A signature (itsdangerous' HMAC-SHA256 `Signer`) covers what the URL opens and for whom: the
    kind (the salt: a thumbnail's signature does not open the original), the collection and path,
    the expiry, and the id of the API key whose request made the URL. `check` also needs that key
    to exist still, so revoking a key closes the URLs signed for it at once and no other key's.
    The expiry is rounded up to URL_EXPIRY_STEP_S and signed in the message: itsdangerous'
    TimestampSigner signs the signing time, which would change the URL every second.
    """

    def __init__(self, secret_file: Path, keys: KeyStore):
        if not secret_file.is_file():
            _write_private(secret_file, secrets.token_hex(32))
        secret = bytes.fromhex(secret_file.read_text().strip())
        self._signers = {
            kind: Signer(
                secret, salt=f"search-by-image {kind}", key_derivation="hmac", digest_method=hashlib.sha256
            )
            for kind in ("images", "thumbnails")
        }
        self._keys = keys

    @staticmethod
    def _message(collection: str, path: str, key_id: str, expires: int) -> bytes:
        return json.dumps([collection, path, key_id, expires]).encode()

    def sign(self, kind: UrlKind, collection: str, path: str, key_id: str) -> tuple[int, str]:
        """The expiry and signature of a URL to `path` for the key `key_id`."""
        expires = -(-(int(time.time()) + URL_LIFETIME_S) // URL_EXPIRY_STEP_S) * URL_EXPIRY_STEP_S
        signature = self._signers[kind].get_signature(self._message(collection, path, key_id, expires))
        return expires, signature.decode()

    def check(
        self,
        kind: UrlKind,
        collection: str,
        path: str,
        key_id: str | None,
        expires: int | None,
        signature: str | None,
    ) -> bool:
        if key_id is None or expires is None or signature is None or expires < time.time():
            return False
        if self._keys.get(key_id) is None:
            return False
        message = self._message(collection, path, key_id, expires)
        return self._signers[kind].verify_signature(message, signature)
