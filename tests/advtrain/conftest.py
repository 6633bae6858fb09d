import pytest


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """The mCE reference model is cached per data set: keep the tests' cache out of ~/.cache
    (one cache for the session, so the reference trains once)."""
    import os

    before = os.environ.get("THREATLANG_CACHE")
    os.environ["THREATLANG_CACHE"] = str(tmp_path_factory.mktemp("threatlang-cache"))
    yield
    if before is None:
        os.environ.pop("THREATLANG_CACHE", None)
    else:
        os.environ["THREATLANG_CACHE"] = before
