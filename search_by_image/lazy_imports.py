"""Modules imported on first use, so the service answers /health before it needs them.

`uvicorn main:app` answers its first request sooner when pandas (metadata CSVs and filters, a
large share of `import main`) is imported by the thread that loads the collections instead of at
start-up (bench/README.md, "Serving without torch" and "Figures behind the code's choices"). A
module-level proxy keeps each call site as it was (`pd.DataFrame`); type checkers see the real
module (`if TYPE_CHECKING: import pandas as pd`).

Not importlib.util.LazyLoader: before Python 3.12.3 it is not thread-safe, and here the first use
may come from the loader thread and a request at once; `importlib.import_module` takes the
import lock.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module `name` until an attribute is read; then imports it (once)."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and repr probes: not a reason to import
            raise AttributeError(attribute)
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (imported)' if self._module else ''}>"
