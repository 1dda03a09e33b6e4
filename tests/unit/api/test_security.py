"""Every answer carries the browser-hardening headers; the API docs pages get all but the CSP."""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from search_by_image.api.headers import CSP, HEADERS, SecurityHeaders


def app_with_headers() -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityHeaders)

    @app.get("/page")
    def page():
        return {"ok": True}

    @app.get("/framed")
    def framed():  # a route that set its own value keeps it
        return PlainTextResponse("x", headers={"X-Frame-Options": "SAMEORIGIN"})

    return app


def test_answers_get_the_headers_and_a_strict_csp_but_keep_their_own():
    with TestClient(app_with_headers()) as client:
        page = client.get("/page")
        assert all(page.headers[name] == value for name, value in HEADERS.items())
        assert page.headers["Content-Security-Policy"] == CSP and "script-src 'self'" in CSP
        assert client.get("/missing").headers["X-Content-Type-Options"] == "nosniff"  # errors too
        assert client.get("/framed").headers["X-Frame-Options"] == "SAMEORIGIN"


def test_the_docs_pages_load_their_cdn_bundle_without_a_csp():
    with TestClient(app_with_headers()) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "Content-Security-Policy" not in docs.headers
        assert docs.headers["X-Frame-Options"] == "DENY"
