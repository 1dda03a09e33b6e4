"""The HTTP service: `uvicorn main:app --host 0.0.0.0 --port 8000`.

Thin: the settings are read from the environment once, logging is set up, and the app is made by
the factory in search_by_image/api/app.py (`create_app`, also usable as
`uvicorn --factory search_by_image.api.app:create_app`).
"""

import logging

from search_by_image.api.app import create_app
from search_by_image.settings import get_settings

__all__ = ["app", "create_app"]

_settings = get_settings()
logging.basicConfig(level=_settings.log_level, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
app = create_app(_settings)
