"""A saved folder of an older format brought to the current one in place, without rewriting its
index and features (6 GB at a million images): format 2 kept every image's fingerprint in
manifest.json, parsed whole at each start (44 MB of JSON at a million); format 3 keeps them in
fingerprints.npy, memory-mapped (disk.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from search_by_image.index import disk
from search_by_image.layout import FINGERPRINTS_FILE, MANIFEST_FILE


def upgrade(folder: Path) -> bool:
    """Write fingerprints.npy, then the format-3 manifest (same generation: the same set), each
    synced and renamed into place; whether there was anything to do. The caller holds
    `disk.writer_lock(folder)`. A crash between the renames leaves the old manifest, which does
    not read the new file, so the folder stays as it was."""
    if not (folder / MANIFEST_FILE).is_file():
        return False
    files = disk.read(folder)
    if files.folder != folder or files.manifest.format >= disk.FORMAT_VERSION:
        return False
    staged_fingerprints = folder / f".{FINGERPRINTS_FILE}.tmp"
    with open(staged_fingerprints, "wb") as out:
        np.save(out, np.ascontiguousarray(files.fingerprints, np.int64).reshape(-1, 2))
    manifest = files.manifest.model_copy(update={"format": disk.FORMAT_VERSION})
    staged_manifest = folder / f".{MANIFEST_FILE}.tmp"
    staged_manifest.write_text(manifest.model_dump_json(indent=1, exclude={"files"}))
    for staged, name in ((staged_fingerprints, FINGERPRINTS_FILE), (staged_manifest, MANIFEST_FILE)):
        disk.fsync(staged)
        os.replace(staged, folder / name)
        disk.fsync(folder)
    return True
