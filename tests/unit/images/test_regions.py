"""Search by region: box syntax, bounds, and a cropped object finding the photo it came from."""

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, jpeg_bytes
from PIL import Image

from main import create_app
from search_by_image.images.regions import BoxError, parse_box, to_pixels


@pytest.mark.parametrize(
    ("text", "pixels"),
    [
        ("10,20,110,220", (10, 20, 110, 220)),
        ("0.5,0,1,1", (200, 0, 400, 300)),
        (" 0 , 0 , 1 , 1 ", (0, 0, 400, 300)),
        ("0,0,400,300", (0, 0, 400, 300)),
    ],
)
def test_boxes_in_pixels_or_fractions(text, pixels):
    assert to_pixels(parse_box(text), 400, 300) == pixels


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1,2,3", "four numbers"),
        ("a,b,c,d", "four numbers"),
        ("0,0,nan,1", "four numbers"),
        ("-5,0,100,100", "negative"),
        ("100,0,50,100", "greater than left"),
        ("0,0,500,100", "outside the 400x300 image"),
        ("0,0,10,100", "at least 16x16"),
        ("0,0,0.01,1", "at least 16x16"),
    ],
)
def test_bad_boxes_say_why(text, words):
    with pytest.raises(BoxError, match=words):
        to_pixels(parse_box(text), 400, 300)


def test_no_box_means_the_whole_image():
    assert parse_box(None) is None and parse_box("  ") is None


@pytest.fixture(scope="module")
def client(demo_collection):
    with TestClient(create_app(demo_collection)) as client:
        yield client


@pytest.fixture(scope="module")
def side_by_side() -> tuple[bytes, int]:
    """The cat on the left, the rocket on the right, in one photo."""
    cat = Image.open(PHOTOS / "chelsea.jpg").resize((400, 300))
    rocket = Image.open(PHOTOS / "rocket.jpg").resize((400, 300))
    both = Image.new("RGB", (800, 300))
    both.paste(cat, (0, 0))
    both.paste(rocket, (400, 0))
    return jpeg_bytes(both), 400


def search(client, data: bytes, **form):
    return client.post("/search", files={"file": ("both.jpg", data, "image/jpeg")}, data={"k": 3, **form})


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ("0.5,0,1,1", "rocket.jpg"),
        ("0,0,0.5,1", "chelsea.jpg"),
        ("400,0,800,300", "rocket.jpg"),
        ("0,0,400,300", "chelsea.jpg"),
    ],
)
def test_a_box_around_one_object_finds_the_photo_it_came_from(client, side_by_side, box, expected):
    data, _ = side_by_side
    body = search(client, data, box=box).json()
    assert body["results"][0]["path"] == expected
    assert body["query"]["box"] in ([400, 0, 800, 300], [0, 0, 400, 300])
    assert (body["query"]["width"], body["query"]["height"]) == (400, 300)


def test_a_box_outside_the_image_is_a_422_naming_the_box(client, side_by_side):
    data, _ = side_by_side
    response = search(client, data, box="0,0,900,300")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "box"]
    assert "outside the 800x300 image" in response.json()["detail"][0]["msg"]
    assert search(client, data, box="1,2").status_code == 422
