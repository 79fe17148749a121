"""chainfuzz's pytest plugin: case files (``crashes/*.json``) are collected as regression tests.

pytest loads this module in every project that has chainfuzz installed, used or not, so it
lives outside the ``chainfuzz`` package (as Hypothesis keeps ``_hypothesis_pytestplugin``) and
imports only pytest and the standard library when pytest starts: no transformers, no
Hypothesis, no change to ``os.environ``. chainfuzz itself is imported when a ``.json`` file
turns out to be a case file.

A case with ``"status": "open"`` records a defect not yet fixed: it is an expected failure, and
when it starts passing the test fails, telling you to mark it ``"fixed"``. A ``"fixed"`` case
must keep passing: a failure is a regression. User properties the cases need are loaded from
the folders of the ``chainfuzz_property_dirs`` ini option (relative to the rootdir).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser) -> None:
    parser.addini("chainfuzz_property_dirs", type="paths", default=[],
                  help="folders of user properties that chainfuzz case files need")


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".json":
        return None
    from chainfuzz.casefile import is_case  # the standard library only

    if is_case(file_path):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self):
        yield CaseItem.from_parent(self, name=self.path.stem)


class CaseItem(pytest.Item):
    def runtest(self) -> None:
        from chainfuzz import cases
        from chainfuzz.registry import load_properties
        from chainfuzz.replayer import replay

        load_properties(self.config.getini("chainfuzz_property_dirs"))
        try:
            status = cases.read(self.path).get("status", "open")
        except cases.UnreadableCase as exc:  # collected by its marker, yet no usable case
            raise CaseError(f"cannot replay: {exc}") from None
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
