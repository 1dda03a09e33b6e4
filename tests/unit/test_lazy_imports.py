"""A module proxy imports its module on first use, once, and only for a real attribute."""

import sys

from search_by_image.lazy_imports import LazyModule


def test_the_module_is_imported_on_the_first_attribute_read_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    proxy = LazyModule("colorsys")
    assert "colorsys" not in sys.modules and "(imported)" not in repr(proxy)
    assert not hasattr(proxy, "__wrapped__")  # probes by copy, pickle or inspect import nothing
    assert "colorsys" not in sys.modules
    assert proxy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules and "(imported)" in repr(proxy)
    assert proxy.hsv_to_rgb is sys.modules["colorsys"].hsv_to_rgb
