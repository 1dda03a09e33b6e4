"""A real `uvicorn main:app` process over a collection folder (images/, data.csv, saved/), for the
benches that measure what a user's server does: launch -> first answered POST /search, memory,
searches through HTTP. One start loop shared by bench/scale_service.py and bench/startup.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from search_by_image.settings import PROJECT_DIR

PORT = 8791
PHOTO = PROJECT_DIR / "data" / "the_images" / "coffee.jpg"


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Served:
    """A started server: its HTTP client, process id and seconds from launch to searchable."""

    client: object
    pid: int
    launch_s: float
    query: bytes

    def search(self, filters: str | None = None) -> dict:
        """POST /search of the bench's photo (k=10), its JSON answer."""
        data = {"k": "10", **({"filters": filters} if filters else {})}
        answer = self.client.post(  # type: ignore[attr-defined]
            "/search", files={"file": ("q.jpg", self.query, "image/jpeg")}, data=data
        )
        answer.raise_for_status()
        return answer.json()


@contextmanager
def served(
    root: Path, code: Path = PROJECT_DIR, port: int = PORT, headers: dict[str, str] | None = None
) -> Iterator[Served]:
    """A fresh server of the code in `code` on the collection in `root`, up once it answered its
    first POST /search; stopped on leaving. `headers` go with every request (a key)."""
    import httpx

    env = {
        **os.environ,
        "SBI_IMAGES_DIR": str(root / "images"),
        "SBI_METADATA_CSV": str(root / "data.csv"),
        "SBI_SAVED_DIR": str(root / "saved"),
        "SBI_MODEL": "efficientnet_lite0",
        "SBI_LOG_LEVEL": "WARNING",
        "SBI_RATE_LIMIT": "",
    }
    query = jpeg(Image.open(PHOTO).convert("RGB").resize((640, 480)))
    command = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    server = subprocess.Popen([*command, "--log-level", "warning"], cwd=code, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600) as client:
            up = Served(client, server.pid, 0.0, query)
            while True:
                try:
                    up.search()
                    break
                except httpx.HTTPError:
                    if server.poll() is not None:
                        raise RuntimeError("the server exited") from None
                    time.sleep(0.05)
            up.launch_s = time.perf_counter() - started
            yield up
    finally:
        server.terminate()
        server.wait(30)
