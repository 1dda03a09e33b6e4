"""The Milvus collection a served collection becomes: its name, and the index nearest the
embedded one (the same kind and lists, so both answer alike: storage_transfer.compare)."""

from __future__ import annotations

import re
from typing import Any


def collection_name(name: str) -> str:
    """Milvus's name for a collection: letters, digits and underscores only."""
    return "sbi_" + re.sub(r"[^0-9A-Za-z_]", "_", name)


def index_params(index_type: str, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(index, search) parameters of Milvus's index nearest the embedded one: FAISS's
    "IVF<n>,Flat" / "IVF<n>,SQ8" become IVF_FLAT / IVF_SQ8 with the same lists; a flat scan
    ("IDMap2,Flat", the embedded default up to ~100k images) stays FLAT; anything else (HNSW)
    becomes HNSW."""
    ivf = re.match(r"IVF(\d+),(Flat|SQ8)", index_type)
    if ivf:
        kind = "IVF_FLAT" if ivf.group(2) == "Flat" else "IVF_SQ8"
        return {"index_type": kind, "params": {"nlist": int(ivf.group(1))}}, {"nprobe": 32}
    if index_type.split(",")[-1] == "Flat" or count < 10_000:  # "IDMap2,Flat": an exact scan
        return {"index_type": "FLAT", "params": {}}, {}
    return {"index_type": "HNSW", "params": {"M": 32, "efConstruction": 200}}, {"ef": 128}
