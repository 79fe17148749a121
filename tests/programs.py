"""Programs the tests start for real, from Debian's packages (shared by conftest and tests)."""

from __future__ import annotations

import os

import pytest


def need_program(name: str) -> str:
    """The path of a program a test starts for real (``redis-server``, ``chromium``,
    ``chromedriver``, from Debian's packages). Absent, the test skips and says why; under CI
    (``CHAINFUZZ_REQUIRE_PROGRAMS=1``, set by ``.ci/run``, which installs them) it fails."""
    import shutil

    path = shutil.which(name)
    if path is None:
        why = f"{name} is not installed (apt-get install redis-server chromium chromium-driver)"
        if os.environ.get("CHAINFUZZ_REQUIRE_PROGRAMS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return path
