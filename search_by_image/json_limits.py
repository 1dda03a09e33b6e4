"""Size and nesting limits for JSON that arrives in form fields (`filters`, `metadata`).

Checked on the text before it is parsed: Python's json module recurses once per level, so a
`filters` value nested a few thousand levels deep raised RecursionError (a 500), and a large
document costs memory and time before any validation can refuse it. The deepest legitimate
document is a list of metadata objects (2 levels) or a range filter (2 levels).
"""

from __future__ import annotations

from search_by_image.errors import JsonTooLarge

MAX_DEPTH = 8


def nesting_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in `text`, brackets inside strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_json_text(text: str, field: str, max_bytes: int, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonTooLarge when `text` is longer than `max_bytes` or nested deeper than `max_depth`."""
    size = len(text.encode())
    if size > max_bytes:
        raise JsonTooLarge(field, f"{field} is {size} bytes of JSON; the limit is {max_bytes}")
    if nesting_depth(text) > max_depth:
        raise JsonTooLarge(field, f"{field} is nested more than {max_depth} levels deep")
