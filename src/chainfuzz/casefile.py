"""Recognising a case file, at no cost: the pytest plugin asks this of every ``.json`` file a
test run collects, so it imports nothing beyond the standard library (`chainfuzz.cases`
reads and writes the files)."""

from __future__ import annotations

from pathlib import Path

FORMAT = 1  # the "chainfuzz_case" value of the files this version writes
MARKER = '"chainfuzz_case"'  # the first key of every case file


def is_case(path: Path) -> bool:
    """Whether ``path`` looks like a chainfuzz case file (read from its first bytes)."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            return MARKER in f.read(200)
    except (OSError, UnicodeDecodeError):
        return False
