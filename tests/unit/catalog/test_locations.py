"""Where collections live: names that cannot escape, discovery, remembered sources."""

import pytest
from helpers import make_settings

from search_by_image.catalog import locations


@pytest.mark.parametrize("name", ["..", "../x", "a/b", ".hidden", "", "x" * 65, "sp ace", "é"])
def test_names_that_could_escape_or_confuse_are_refused(name):
    with pytest.raises(locations.InvalidName, match="invalid collection name"):
        locations.validate_name(name)


def test_the_default_collection_keeps_the_original_layout(tmp_path):
    settings = make_settings(tmp_path)
    location = locations.find(settings, "default")
    assert (location.images_dir, location.metadata_csv, location.saved_dir) == (
        settings.images_dir,
        settings.metadata_csv,
        settings.saved_dir,
    )


def test_named_collections_are_recorded_and_discovered(tmp_path):
    settings = make_settings(tmp_path)
    (tmp_path / "shoes").mkdir()
    with pytest.raises(FileNotFoundError, match="--images"):
        locations.for_indexing(settings, "shoes")
    made = locations.for_indexing(settings, "shoes", tmp_path / "shoes")
    assert made.saved_dir == settings.saved_dir / "collections" / "shoes"
    assert made.metadata_csv == made.saved_dir / "metadata.csv"
    assert locations.for_indexing(settings, "shoes") == made  # remembered
    assert list(locations.discover(settings)) == ["default", "shoes"]
    assert locations.find(settings, "shoes") == made
    with pytest.raises(locations.UnknownCollection, match="known collections: default, shoes"):
        locations.find(settings, "hats")
