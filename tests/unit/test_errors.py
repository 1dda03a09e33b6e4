"""Domain errors: each carries its HTTP answer, and stays the builtin it used to be."""

from search_by_image import errors


def every_error() -> list[type[errors.SearchByImageError]]:
    found, todo = [], [errors.SearchByImageError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_domain_error_answers_a_4xx_or_5xx():
    classes = every_error()
    assert len(classes) > 20
    for cls in classes:
        if cls is not errors.SearchByImageError and "__init__" not in vars(cls):
            assert 400 <= cls.status < 600, cls


def test_busy_and_rate_limited_answers_say_when_to_come_back():
    assert errors.IndexBusy.status == 503 and int(errors.IndexBusy.headers["Retry-After"]) > 0
    assert errors.TooManyRequests("slow down", 7).headers == {"Retry-After": "7"}


def test_callers_catching_the_old_builtins_still_catch_them():
    assert issubclass(errors.IndexBusy, RuntimeError) and issubclass(errors.UnknownCollection, LookupError)
    assert issubclass(errors.ImagesFolderMissing, FileNotFoundError)
    assert issubclass(errors.InvalidName, ValueError)
