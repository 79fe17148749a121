"""Recognising a case file, at no cost: the pytest plugin asks this of every ``.json`` file a
test run collects, so it imports nothing beyond the standard library (`chainfuzz.cases`
reads and writes the files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

FORMAT = 1  # the "chainfuzz_case" value of the files this version writes
MARKER = b'"chainfuzz_case"'  # the first key of every case file


def is_case(path: Path) -> bool:
    """Whether ``path`` looks like a chainfuzz case file (read from its first bytes). Only a
    regular file is read: a FIFO named ``x.json`` is opened without blocking and refused, so
    neither this nor pytest's collection waits on one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and MARKER in os.read(fd, 200)
    except OSError:
        return False
    finally:
        os.close(fd)
