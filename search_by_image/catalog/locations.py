"""Where each collection lives: its images folder, its metadata CSV and its saved index.

The default collection keeps the original layout (the settings' images_dir, metadata_csv and
saved_dir), so existing installs and commands keep working. A named collection keeps its index in
`saved/collections/NAME/`, beside a `collection.json` recording the images folder and CSV it was
built from: later indexer runs and the service find them without flags.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from search_by_image.errors import ImagesFolderMissing, InvalidName, UnknownCollection
from search_by_image.layout import COLLECTIONS_DIR, SOURCE_FILE, TRASH_DIR
from search_by_image.settings import Settings

DEFAULT = "default"
#: Letters, digits, `_` and `-`, starting with a letter or digit: safe as a folder name and in
#: a URL, and no `.`/`..`/`/` path tricks.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
METADATA_FILE = "metadata.csv"


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    images_dir: Path
    metadata_csv: Path | None
    saved_dir: Path

    @property
    def trash_dir(self) -> Path:
        return self.saved_dir / TRASH_DIR

    def served_file(self, path: str) -> Path | None:
        """The file to serve for indexed `path`: a regular file whose real path, resolved now
        (symlinks followed), lies inside the images folder; None otherwise. A symlink indexed
        once and later pointed at /etc/passwd or saved/api_keys.json is refused, not served."""
        root = self.images_dir.resolve()
        try:
            real = (root / path).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not real.is_relative_to(root) or not stat.S_ISREG(real.stat().st_mode):
            return None
        return real


class _Source(BaseModel):
    images_dir: Path
    metadata_csv: Path


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def unwritable(folder: Path) -> str | None:
    """Why this process cannot write `folder` (with the fix), or None when it can.

    The usual cause is a bind mount owned by another user than the container's (uid 10001, or
    whatever `--user` says), so the reason names both owners.
    """
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # a folder not made yet is as writable as its first existing parent
    if os.access(probe, os.W_OK | os.X_OK):
        return None
    me = f"uid {os.getuid()}, gid {os.getgid()}"
    try:
        info = probe.stat()
        owner = f"belongs to uid {info.st_uid}, gid {info.st_gid}, mode {info.st_mode & 0o777:o}"
    except OSError as exc:
        owner = f"cannot be read ({exc.strerror})"
    return (
        f"{probe} is not writable by this process ({me}): it {owner}. Run as its owner "
        "(docker run --user UID:GID, podman run --userns=keep-id) or give it to this user "
        "or to group 0 with write access (chown, chmod g+rwX)"
    )


def _named_dir(settings: Settings, name: str) -> Path:
    return settings.saved_dir / COLLECTIONS_DIR / name


def default_location(settings: Settings) -> Location:
    return Location(
        name=DEFAULT,
        images_dir=settings.images_dir,
        metadata_csv=settings.metadata_csv,
        saved_dir=settings.saved_dir,
    )


def _read_named(settings: Settings, name: str) -> Location | None:
    folder = _named_dir(settings, name)
    try:
        source = _Source.model_validate_json((folder / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return Location(
        name=name, images_dir=source.images_dir, metadata_csv=source.metadata_csv, saved_dir=folder
    )


def find(settings: Settings, name: str) -> Location:
    """The collection called `name`; raises UnknownCollection (with the known names) if none."""
    if name == DEFAULT:
        return default_location(settings)
    location = _read_named(settings, validate_name(name))
    if location is None:
        known = ", ".join(discover(settings))
        raise UnknownCollection(f"no collection named {name!r}; known collections: {known}")
    return location


def discover(settings: Settings) -> dict[str, Location]:
    """Every collection: the default one, then each named one, sorted by name."""
    found = {DEFAULT: default_location(settings)}
    root = settings.saved_dir / COLLECTIONS_DIR
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if NAME_PATTERN.fullmatch(folder.name) and (location := _read_named(settings, folder.name)):
                found[folder.name] = location
    return found


def for_indexing(
    settings: Settings, name: str, images_dir: Path | None = None, metadata_csv: Path | None = None
) -> Location:
    """The location the indexer writes, recording a named collection's sources on first use.

    The default collection takes its folders from the settings (flags override them for this run
    only). A named one needs `images_dir` the first time; later runs reuse what was recorded
    unless given again. Its CSV defaults to `metadata.csv` in its saved folder.
    """
    if name == DEFAULT:
        location = default_location(settings)
        return location.model_copy(
            update={
                "images_dir": images_dir or location.images_dir,
                "metadata_csv": metadata_csv or location.metadata_csv,
            }
        )
    validate_name(name)
    known = _read_named(settings, name)
    folder = _named_dir(settings, name)
    if images_dir is None:
        if known is None:
            raise ImagesFolderMissing(f"collection {name!r} is new: give its images folder with --images")
        images_dir = known.images_dir
    source = _Source(
        images_dir=images_dir.resolve(),
        metadata_csv=(
            metadata_csv.resolve()
            if metadata_csv
            else known.metadata_csv
            if known
            else folder / METADATA_FILE
        ),
    )
    if known is None or (known.images_dir, known.metadata_csv) != (source.images_dir, source.metadata_csv):
        folder.mkdir(parents=True, exist_ok=True)
        staged = folder / f".{SOURCE_FILE}.tmp"
        staged.write_text(source.model_dump_json(indent=1))
        os.replace(staged, folder / SOURCE_FILE)
    return Location(name=name, saved_dir=folder, **source.model_dump())
