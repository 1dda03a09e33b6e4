"""Settings: SBI_* environment variables, explicit values over them, bad values refused at start."""

import pytest
from pydantic import ValidationError

from search_by_image.settings import Settings


def test_environment_variables_set_settings_and_explicit_values_win(monkeypatch):
    monkeypatch.setenv("SBI_IMAGE_SIZE", "224")
    monkeypatch.setenv("SBI_RATE_LIMIT", "5/second")
    settings = Settings()
    assert settings.image_size == 224 and settings.rate_limit == "5/second"
    assert Settings(image_size=320).image_size == 320  # a flag of with_faiss.py over the environment


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("rate_limit", "often", "often"),
        ("trusted_proxies", ["10.0.0.0/8", "proxy.example"], "proxy.example"),
        ("image_size", 32, "greater than or equal to 64"),
        ("model", "vgg16", "efficientnet_lite0"),
    ],
)
def test_a_bad_value_is_refused_naming_it(field, value, words):
    with pytest.raises(ValidationError, match=words):
        Settings(**{field: value})


def test_the_onnx_cache_is_beside_the_indexes_unless_set(tmp_path):
    assert Settings(saved_dir=tmp_path, onnx_dir=None).onnx_cache == tmp_path / "onnx"
    assert Settings(saved_dir=tmp_path, onnx_dir=tmp_path / "models").onnx_cache == tmp_path / "models"
