"""Settings, read once from `SBI_*` environment variables (or a `.env` file): kept at the top
level for scripts that import it; the settings themselves are search_by_image/settings.py."""

from search_by_image.settings import PROJECT_DIR, Settings, get_settings

__all__ = ["PROJECT_DIR", "Settings", "get_settings"]
