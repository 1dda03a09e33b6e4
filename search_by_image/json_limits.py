"""The size limit for JSON that arrives in form fields (`filters`, `metadata`).

Checked on the text before it is parsed: a large document costs memory and time before any
validation can refuse it. Nesting needs no limit of ours: both fields are parsed by pydantic's
parser, which refuses documents nested more than about 200 levels with an error (Python's json
module recursed until RecursionError, a 500), and their schemas refuse anything over 2 levels.
"""

from __future__ import annotations

from search_by_image.errors import JsonTooLarge


def check_json_text(text: str, field: str, max_bytes: int) -> None:
    """Raise JsonTooLarge (422, naming `field`) when `text` is longer than `max_bytes`."""
    size = len(text.encode())
    if size > max_bytes:
        raise JsonTooLarge(field, f"{field} is {size} bytes of JSON; the limit is {max_bytes}")
