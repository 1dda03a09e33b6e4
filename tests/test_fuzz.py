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
from fastapi import HTTPException
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error

from conftest import PHOTOS
from main import create_app
from search_by_image.auth import KEYS_FILE, KeyStore
from search_by_image.uploads import decode_upload

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
    settings_ = demo_collection.model_copy(update={
        "images_dir": root / "images", "saved_dir": root / "saved", "metadata_csv": root / "data.csv",
        "max_upload_bytes": 200_000, "rate_limit": "",
    })
    _, key = KeyStore(settings_.saved_dir / KEYS_FILE).create("admin", "fuzz")
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: the service stays loaded for schemathesis' calls
        yield app, key
    print(f"\nfuzz cases: {dict(CASES)}, total {sum(CASES.values())}")


def test_no_endpoint_answers_5xx(served):
    """Every operation of the OpenAPI schema, with generated (valid and invalid) requests. Half
    the cases carry the admin key, so the write endpoints are fuzzed past authentication too."""
    app, key = served
    operations = [result.ok() for result in schemathesis.openapi.from_asgi("/openapi.json", app)
                  .get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:
        @given(case=operation.as_strategy())
        @FUZZ
        def fuzz(case):
            headers = {"Authorization": f"Bearer {key}"} if CASES[operation.label] % 2 else {}
            CASES[operation.label] += 1
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        fuzz()


def small(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(PHOTOS / "chelsea.jpg").resize((48, 32)).save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = {fmt: small(fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")}


def decodes_or_refuses(data: bytes) -> None:
    try:
        image = decode_upload(data, 1_000_000, None)
    except HTTPException as exc:
        assert 400 <= exc.status_code < 500, exc.detail
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
