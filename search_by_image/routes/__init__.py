"""The API's routers. `invalid_field` is their one way to reject a form field FastAPI itself
cannot validate (JSON inside a form, a box): the same 422 shape as FastAPI's own, `loc` included."""

from fastapi.exceptions import RequestValidationError


def invalid_field(*location: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *location), "msg": message}])
