"""API keys, scopes, signed image URLs, rate limits, CORS and security headers."""

import shutil
import stat

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from main import create_app
from search_by_image.api import auth
from search_by_image.api.auth import URL_EXPIRY_STEP_S, URL_LIFETIME_S, KeyStore, UrlSigner
from search_by_image.cli import keys as keys_command
from search_by_image.layout import KEYS_FILE, URL_SECRET_FILE


@pytest.fixture
def keys(tmp_path) -> KeyStore:
    return KeyStore(tmp_path / KEYS_FILE)


def test_keys_are_stored_as_salted_hashes_others_cannot_read(keys):
    record, key = keys.create("search", "laptop")
    text = keys.path.read_text()
    secret = key.split("_", 2)[2]
    assert secret not in text and record.hash in text
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert keys.verify(key) == record
    other, other_key = keys.create("search")
    assert other.salt != record.salt


def test_secrets_are_readable_by_their_owner_only(tmp_path):
    UrlSigner(tmp_path / URL_SECRET_FILE, KeyStore(tmp_path / KEYS_FILE))
    assert stat.S_IMODE((tmp_path / URL_SECRET_FILE).stat().st_mode) == 0o600
    # files an older version left group-readable are tightened when read
    older = tmp_path / "older"
    older.mkdir()
    KeyStore(older / KEYS_FILE).create("search")
    UrlSigner(older / URL_SECRET_FILE, KeyStore(older / KEYS_FILE))
    for name in (KEYS_FILE, URL_SECRET_FILE):
        (older / name).chmod(0o640)
    KeyStore(older / KEYS_FILE).has_admin()
    UrlSigner(older / URL_SECRET_FILE, KeyStore(older / KEYS_FILE))
    for name in (KEYS_FILE, URL_SECRET_FILE):
        assert stat.S_IMODE((older / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("bad", ["", "sbi_", "sbi_nope_x", "Bearer x", "sbi_{id}_wrong", "xyz_{id}_{secret}"])
def test_anything_but_the_exact_key_is_refused(keys, bad):
    record, key = keys.create("admin")
    secret = key.split("_", 2)[2]
    assert keys.verify(bad.format(id=record.id, secret=secret)) is None


def test_a_revoked_key_stops_working(keys):
    record, key = keys.create("admin")
    assert keys.revoke(record.id) and keys.verify(key) is None
    assert not keys.revoke(record.id)


def test_the_keys_command_creates_lists_and_revokes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SBI_SAVED_DIR", str(tmp_path))

    def run(*args):  # `python -m search_by_image.cli.keys ARGS`, in this process
        code = keys_command.main(list(args))
        return code, *capsys.readouterr()

    code, out, err = run("create", "--scope", "admin", "--label", "ci")
    assert code == 0 and "shown only this once" in err
    key = out.strip()
    listed = run("list")[1]
    key_id = key.split("_")[1]
    assert key_id in listed and "admin" in listed and "ci" in listed and key.split("_", 2)[2] not in listed
    assert KeyStore(tmp_path / KEYS_FILE).verify(key) is not None
    assert run("revoke", key_id)[0] == 0
    assert KeyStore(tmp_path / KEYS_FILE).verify(key) is None
    assert run("revoke", key_id)[0] == 1


def make_client(demo_collection, tmp_path, **overrides) -> TestClient:
    """The demo index, with its own saved folder (so keys and URL secrets stay per test)."""
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    settings = demo_collection.model_copy(update={"saved_dir": tmp_path / "saved", **overrides})
    return TestClient(create_app(settings))


def search(client, key: str | None = None, **form):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(
        "/search",
        headers=headers,
        data=form,
        files={"file": ("q.jpg", (PHOTOS / "chelsea.jpg").read_bytes(), "image/jpeg")},
    )


def test_search_is_open_by_default_and_writes_always_need_an_admin_key(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path) as client:
        assert search(client).status_code == 200
        photo = (PHOTOS / "dog.jpg").read_bytes()
        refused = client.post(
            "/collections/default/images", files=[("files", ("d.jpg", photo, "image/jpeg"))]
        )
        assert refused.status_code == 401 and "none exists yet" in refused.json()["detail"]
        assert refused.headers["www-authenticate"] == "Bearer"
        keys = client.app.state.keys
        _, search_key = keys.create("search")
        forbidden = client.delete(
            "/collections/default/images/0", headers={"Authorization": f"Bearer {search_key}"}
        )
        assert forbidden.status_code == 403 and "needs scope admin" in forbidden.json()["detail"]
        _, admin_key = keys.create("admin")
        wrong = client.delete("/collections/default/images/0", headers={"Authorization": "Bearer sbi_x_y"})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
        assert search(client, "sbi_x_y").status_code == 401  # a bad key is refused even where none is needed
        missing = client.delete(
            "/collections/default/images/999", headers={"Authorization": f"Bearer {admin_key}"}
        )
        assert missing.status_code == 404  # authorised; the image just does not exist


def test_a_server_that_requires_keys_for_search(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path, search_requires_key=True) as client:
        assert client.get("/health").status_code == 200  # probes stay open
        assert client.get("/search").status_code == 200  # the page, with its key box
        assert (
            'id="key-form"' in client.get("/search").text and "needs an API key" in client.get("/search").text
        )
        refused = search(client)
        assert refused.status_code == 401 and "scope search" in refused.json()["detail"]
        assert client.get("/collections").status_code == 401
        assert client.get("/images/chelsea.jpg").status_code == 401
        record, key = client.app.state.keys.create("search")
        found = search(client, key, k=1)
        assert found.status_code == 200
        url = found.json()["results"][0]["image_url"]
        assert "sig=" in url and client.get(url).status_code == 200  # signed: an <img> sends no header
        assert client.get(url.replace("sig=", "sig=0")).status_code == 401
        thumbnail = client.get(found.json()["results"][0]["thumbnail_url"])  # signed the same way
        assert thumbnail.status_code == 200 and thumbnail.headers["cache-control"].startswith("private")
        assert client.get("/thumbnails/chelsea.jpg").status_code == 401
        assert (
            client.get("/images/chelsea.jpg", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        )
        client.app.state.keys.revoke(record.id)
        assert search(client, key).status_code == 401  # revoked: refused at once


def test_a_signed_url_opens_only_what_it_was_signed_for_and_only_while_its_key_lives(
    demo_collection, tmp_path
):
    with make_client(demo_collection, tmp_path, search_requires_key=True) as client:
        keys = client.app.state.keys
        revoked, revoked_key = keys.create("search")
        _, kept_key = keys.create("search")
        hit = search(client, revoked_key, k=1).json()["results"][0]
        image_url, thumbnail_url = hit["image_url"], hit["thumbnail_url"]
        kept_hit = search(client, kept_key, k=1).json()["results"][0]
        assert client.get(image_url).status_code == 200 and client.get(thumbnail_url).status_code == 200
        path, signed = thumbnail_url.split("?")[0].removeprefix("/thumbnails/"), thumbnail_url.split("?")[1]
        assert client.get(f"/images/{path}?{signed}").status_code == 401  # a thumbnail's signature
        other = next(p for p in client.app.state.service.default.snapshot.store.paths if p != path)
        assert client.get(f"/thumbnails/{other}?{signed}").status_code == 401  # another image's
        keys.revoke(revoked.id)
        assert client.get(image_url).status_code == 401  # the key that asked is gone: so are its URLs
        assert client.get(thumbnail_url).status_code == 401
        assert client.get(kept_hit["image_url"]).status_code == 200  # other keys' URLs still open


def test_signed_urls_stay_the_same_from_search_to_search_so_browsers_cache_them(keys, tmp_path, monkeypatch):
    record, _ = keys.create("search")
    signer = UrlSigner(tmp_path / ".url_secret", keys)
    window = 500_000 * URL_EXPIRY_STEP_S
    now = window + 1.0  # the first second of a window
    monkeypatch.setattr(auth.time, "time", lambda: now)
    url = ("thumbnails", "default", "dog.jpg", record.id)
    first = signer.sign(*url)
    now = window + URL_EXPIRY_STEP_S - 1  # a later search in the same window: the same URL
    assert signer.sign(*url) == first
    now = window + URL_EXPIRY_STEP_S + 1  # the next window: a new URL, the old one still valid
    assert signer.sign(*url) != first
    assert signer.check(*url, *first)
    assert not signer.check("images", "default", "dog.jpg", record.id, *first)  # not the original
    assert not signer.check("thumbnails", "default", "cat.jpg", record.id, *first)
    assert not signer.check("thumbnails", "other", "dog.jpg", record.id, *first)
    assert not signer.check("thumbnails", "default", "dog.jpg", "0000", *first)
    assert not signer.check(*url, None, None) and not signer.check(*url, first[0], "not base64!")
    now = window  # the last second of a window: its URL still lives its whole lifetime
    expires, signature = signer.sign(*url)
    now = window + URL_LIFETIME_S
    assert signer.check(*url, expires, signature)
    now = expires + 1
    assert not signer.check(*url, expires, signature)  # then it expires
    now = window
    keys.revoke(record.id)
    assert not signer.check(*url, expires, signature)  # and dies with its key


def test_the_docs_show_the_bearer_scheme_on_protected_routes(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path) as client:
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["API key"]["scheme"] == "bearer"
        assert schema["paths"]["/search"]["post"]["security"] == [{"API key": []}]
        assert "security" not in schema["paths"]["/health"]["get"]


def test_too_many_requests_get_a_429_with_retry_after_per_client(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path, rate_limit="2/minute") as client:
        assert [search(client).status_code for _ in range(2)] == [200, 200]
        limited = search(client)
        assert limited.status_code == 429 and "too many requests" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        _, key = client.app.state.keys.create("search")
        assert search(client, key).status_code == 200  # a key has its own budget
        assert client.get("/health").status_code == 200  # probes are never limited


def test_security_headers_and_cors_off_by_default(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path) as client:
        page = client.get("/search", headers={"Origin": "https://elsewhere.example"})
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert "access-control-allow-origin" not in page.headers
        assert "content-security-policy" not in client.get("/docs").headers
        assert search(client).headers["x-content-type-options"] == "nosniff"


def test_cors_for_configured_origins_only(demo_collection, tmp_path):
    with make_client(demo_collection, tmp_path, cors_origins=["https://app.example"]) as client:
        allowed = client.options(
            "/search",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def behind_uvicorn(demo_collection, tmp_path, **overrides) -> TestClient:
    """The app wrapped as `uvicorn main:app` wraps it (proxy headers believed from 127.0.0.1),
    called from 127.0.0.1."""
    shutil.copytree(demo_collection.saved_dir, tmp_path / "saved")
    settings = demo_collection.model_copy(update={"saved_dir": tmp_path / "saved", **overrides})
    app = create_app(settings)
    return TestClient(ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1"), client=("127.0.0.1", 5000))


def forwarded_search(client, hops: str):
    return client.post(
        "/search",
        headers={"X-Forwarded-For": hops},
        files={"file": ("q.jpg", (PHOTOS / "chelsea.jpg").read_bytes(), "image/jpeg")},
    )


def test_a_rotating_forwarded_header_does_not_reset_the_rate_limit(demo_collection, tmp_path):
    with behind_uvicorn(demo_collection, tmp_path, rate_limit="2/minute") as client:
        statuses = [forwarded_search(client, f"203.0.113.{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 429, 429]


@pytest.mark.parametrize(
    "rotated",
    [
        lambda n: [("X-Forwarded-For", f"203.0.113.{n}:{4000 + n}")],
        lambda n: [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", f"203.0.113.{n}")],
        lambda n: [("X-Forwarded-For", f"[2001:db8::{n}]")],
        lambda n: [("X-Forwarded-For", f"[2001:db8::{n}]:{4000 + n}")],
    ],
    ids=["ip:port", "two headers", "[ipv6]", "[ipv6]:port"],
)
def test_no_spelling_of_the_forwarded_header_resets_the_rate_limit(demo_collection, tmp_path, rotated):
    photo = (PHOTOS / "chelsea.jpg").read_bytes()
    with behind_uvicorn(demo_collection, tmp_path, rate_limit="2/minute") as client:
        statuses = [
            client.post(
                "/search", headers=rotated(n), files={"file": ("q.jpg", photo, "image/jpeg")}
            ).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 429, 429]


def test_a_trusted_proxy_gives_each_forwarded_client_its_own_budget(demo_collection, tmp_path):
    with behind_uvicorn(
        demo_collection, tmp_path, rate_limit="1/minute", trusted_proxies=["127.0.0.0/8"]
    ) as client:
        first = [forwarded_search(client, "203.0.113.7").status_code for _ in range(2)]
        other = forwarded_search(client, "203.0.113.8").status_code
    assert first == [200, 429] and other == 200
