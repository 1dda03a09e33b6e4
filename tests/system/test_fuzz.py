"""Fuzzing: every endpoint from the OpenAPI schema (schemathesis), and the decode path (hypothesis).

The property is the same everywhere: whatever comes in, the answer is never a 5xx and never hangs
(each case has a deadline). Run with `-s` to see how many cases ran; FUZZ_EXAMPLES=500 for a
longer run than CI's.
"""

import io
import os
import shutil
from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from helpers import PHOTOS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error

from main import create_app
from search_by_image.api.auth import KeyStore
from search_by_image.errors import UploadRejected
from search_by_image.images.rejections import decode_upload
from search_by_image.layout import KEYS_FILE

CASES: Counter = Counter()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=10_000, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def served(demo_collection, tmp_path_factory):
    """A started app on a writable copy of the demo collection, and an admin key for it."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("images", "saved"):
        shutil.copytree(getattr(demo_collection, f"{name}_dir"), root / name)
    shutil.copy2(demo_collection.metadata_csv, root / "data.csv")
    settings_ = demo_collection.model_copy(
        update={
            "images_dir": root / "images",
            "saved_dir": root / "saved",
            "metadata_csv": root / "data.csv",
            "max_upload_bytes": 200_000,
            "rate_limit": "",
        }
    )
    _, key = KeyStore(settings_.saved_dir / KEYS_FILE).create("admin", "fuzz")
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: the service stays loaded for schemathesis' calls
        yield app, key
    print(f"\nfuzz cases: {dict(CASES)}, total {sum(CASES.values())}")


def fuzzer(operation, key: str):
    """A Hypothesis test of one operation; half its cases carry the admin key."""

    @given(case=operation.as_strategy())
    @FUZZ
    def fuzz(case):
        headers = {"Authorization": f"Bearer {key}"} if CASES[operation.label] % 2 else {}
        CASES[operation.label] += 1
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    return fuzz


def test_no_endpoint_answers_5xx(served):
    """Every operation of the OpenAPI schema, with generated (valid and invalid) requests. Half
    the cases carry the admin key, so the write endpoints are fuzzed past authentication too."""
    app, key = served
    operations = [
        result.ok() for result in schemathesis.openapi.from_asgi("/openapi.json", app).get_all_operations()
    ]
    assert len(operations) >= 8

    for operation in operations:
        fuzzer(operation, key)()


def small(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(PHOTOS / "chelsea.jpg").resize((48, 32)).save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = {fmt: small(fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")}


def decodes_or_refuses(data: bytes) -> None:
    try:
        image = decode_upload(data, 1_000_000, None)
    except UploadRejected as exc:
        assert 400 <= exc.status < 500, str(exc)
    else:
        assert image.mode == "RGB" and image.width > 0


@given(st.binary(max_size=2048))
@FUZZ
def test_random_bytes_are_refused_with_a_4xx(data):
    CASES["decode: random bytes"] += 1
    decodes_or_refuses(data)


@given(st.sampled_from(sorted(SEEDS)), st.data())
@settings(max_examples=EXAMPLES * 8, deadline=10_000, suppress_health_check=list(HealthCheck))
def test_damaged_real_images_decode_or_are_refused_with_a_4xx(fmt, data):
    """Real files with flipped bytes, cut short, or with bytes inserted: the ways uploads break."""
    CASES["decode: damaged images"] += 1
    raw = bytearray(SEEDS[fmt])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    extra = data.draw(st.binary(max_size=64))
    decodes_or_refuses(bytes(raw[:cut]) + extra)


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


HOSTILE = {  # requests built to hurt: (method, url, form fields, headers)
    "filters nested 5000 deep": ("POST", "/search", {"filters": nested(5000, "object")}, {}),
    "filters of 100 kB": ("POST", "/search", {"filters": '{"a": "' + "x" * 100_000 + '"}'}, {}),
    "metadata nested 5000 deep": (
        "POST",
        "/collections/default/images",
        {"metadata": nested(5000, "list")},
        {},
    ),
    "metadata naming the image column": (
        "POST",
        "/collections/default/images",
        {"metadata": '{"path": "x"}'},
        {},
    ),
    "metadata retyping a number column": (
        "POST",
        "/collections/default/images",
        {"metadata": '{"width": "unknown"}'},
        {},
    ),
    "duplicates at threshold 0.0001, far page": (
        "GET",
        "/collections/default/duplicates?threshold=0.0001&offset=100000",
        None,
        {},
    ),
    "duplicates with a huge page": ("GET", "/collections/default/duplicates?limit=100000", None, {}),
    "a rotating X-Forwarded-For": ("POST", "/search", {}, {"X-Forwarded-For": "198.51.100.9, 203.0.113.1"}),
    "an image path out of the folder": ("GET", "/images/..%2f..%2fsaved%2fapi_keys.json", None, {}),
}


@pytest.mark.parametrize("label", sorted(HOSTILE))
def test_hostile_requests_get_a_4xx_or_an_answer_never_a_5xx(served, label):
    app, key = served
    method, url, form, headers = HOSTILE[label]
    CASES[f"hostile: {label}"] += 1
    client = TestClient(app)  # the service the fixture started stays loaded
    files = (
        {"file": ("q.jpg", small("JPEG"), "image/jpeg")}
        if url == "/search"
        else [("files", ("a.jpg", small("JPEG"), "image/jpeg"))]
        if form is not None
        else None
    )
    response = client.request(
        method, url, data=form, files=files, headers={"Authorization": f"Bearer {key}", **headers}
    )
    assert response.status_code < 500, response.text[:300]
    if "nested" in label or "kB" in label or "image column" in label or "retyping" in label:
        assert response.status_code == 422


@given(
    depth=st.integers(1, 3000),
    kind=st.sampled_from(["list", "object"]),
    field=st.sampled_from(["filters", "metadata"]),
)
@FUZZ
def test_json_fields_of_any_depth_are_answered_without_a_5xx(served, depth, kind, field):
    app, key = served
    CASES["hostile: JSON depth"] += 1
    client = TestClient(app)
    if field == "filters":
        response = client.post(
            "/search",
            data={"filters": nested(depth, kind)},
            files={"file": ("q.jpg", small("JPEG"), "image/jpeg")},
        )
    else:
        response = client.post(
            "/collections/default/images",
            data={"metadata": nested(depth, kind)},
            headers={"Authorization": f"Bearer {key}"},
            files=[("files", ("a.jpg", small("JPEG"), "image/jpeg"))],
        )
    assert response.status_code < 500 and (depth <= 8 or response.status_code == 422)
