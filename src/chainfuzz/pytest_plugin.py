"""pytest collects chainfuzz case files (``crashes/*.json``) as regression tests.

A case with ``"status": "open"`` records a defect not yet fixed: it is an expected failure, and
when it starts passing the test fails, telling you to mark it ``"fixed"``. A ``"fixed"`` case
must keep passing: a failure is a regression.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent):
    from .cases import is_case

    if file_path.suffix == ".json" and is_case(file_path):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        yield CaseItem.from_parent(self, name=self.path.stem)


class CaseItem(pytest.Item):
    def runtest(self) -> None:
        from . import cases
        from .replay import replay

        status = cases.read(self.path).get("status", "open")
        outcome = replay(self.path)
        if outcome.status == "skipped":
            pytest.skip(outcome.detail)
        if outcome.status == "missing":
            pytest.skip(f"{outcome.detail}; `chainfuzz fetch` downloads the real-template corpus")
        if outcome.status == "error":
            raise CaseError(f"cannot replay: {outcome.detail}")
        if status == "open":
            if outcome.failing:
                pytest.xfail(f"open defect still present: {outcome.detail}")
            raise CaseError(f"{outcome.property} now holds for this case: set \"status\": \"fixed\" "
                            "in the case file to keep it as a regression test")
        if outcome.failing:
            raise CaseError(f"regression: {outcome.property} fails again: {outcome.detail}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, CaseError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"chainfuzz case {self.name}"


class CaseError(Exception):
    """A case whose replay contradicts its recorded status."""
