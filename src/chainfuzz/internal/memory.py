"""What a search remembers between runs: its failures and its interesting inputs.

Stored in a Hypothesis example database (`hypothesis.database`: a folder by default, or any
other, such as ``RedisExampleDatabase`` shared by several workers), under keys made of the
target's fingerprint and the property id. Values are the cases themselves as JSON, not
Hypothesis' choice sequences: those are replayed through the strategy, and the strategy of
a template depends on what chainfuzz learned about it (`template.constraints`), so a choice
sequence saved last night would draw a different conversation tonight after either changed.
A case replays the same input whatever generated it. A rerun checks the failures first,
then seeds the mutation mode with the interesting inputs (`internal.mutate`).
"""

from __future__ import annotations

import json
import random
from typing import Iterable

from .text import dumps_json

# Interesting inputs kept per (target, property): enough to seed mutation with varied
# structure; pruned at random past it, so the store stays small whatever the run length.
MAX_CORPUS = 200
# Failures kept per (target, property): minimal reproducers, one per defect key found.
MAX_FAILURES = 50


class Memory:
    """One search's view of the database: ``failures`` and ``corpus`` under its own keys."""

    def __init__(self, database, target_key: str, prop_ids: Iterable[str]) -> None:
        self.db = database
        self.keys = {pid: f"chainfuzz/v1/{target_key}/{pid}".encode("utf-8", "surrogatepass")
                     for pid in prop_ids}
        self._pending: dict[bytes, dict[str, None]] = {}  # corpus entries not yet written
        self.broken: str | None = None  # why the database could not be written; then it is not

    def _fetch(self, key: bytes) -> list[dict]:
        out = []
        try:
            stored = list(self.db.fetch(key))
        except OSError:
            return out  # an unreadable database remembers nothing
        for raw in stored:
            try:
                case = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue  # written by something else, or truncated: not ours to replay
            if isinstance(case, dict):
                out.append(case)
        return out

    def failures(self) -> list[tuple[str, dict]]:
        """(property id, input) of every property's remembered failures, smallest first."""
        cases = [(pid, c) for pid, key in self.keys.items() for c in self._fetch(key + b"/failures")]
        return sorted(cases, key=lambda pc: len(dumps_json(pc[1])))

    def corpus(self) -> list[dict]:
        return [c for key in self.keys.values() for c in self._fetch(key + b"/corpus")]

    def save_failure(self, prop_id: str, case: dict) -> None:
        """Written at once, like the case file: a killed run keeps it."""
        key = self.keys[prop_id] + b"/failures"
        self._write(lambda: (self.db.save(key, dumps_json(case).encode("utf-8")), self._prune(key, MAX_FAILURES)))

    def _write(self, action) -> None:
        """Run a write; a database that cannot be written (a full disk, a read-only folder)
        stops being written to, and the search goes on: the case files hold the findings."""
        if self.broken is None:
            try:
                action()
            except OSError as exc:
                self.broken = f"{type(exc).__name__}: {exc}"

    def save_interesting(self, prop_id: str, case: dict) -> None:
        """Kept in memory until `flush`: interesting inputs come by the hundred per second."""
        pending = self._pending.setdefault(self.keys[prop_id] + b"/corpus", {})
        if len(pending) < MAX_CORPUS:
            pending[dumps_json(case)] = None

    def flush(self) -> None:
        pending, self._pending = self._pending, {}

        def write():
            for key, texts in pending.items():
                for text in texts:
                    self.db.save(key, text.encode("utf-8"))
                if texts:
                    self._prune(key, MAX_CORPUS)

        self._write(write)

    def _prune(self, key: bytes, cap: int) -> None:
        stored = list(self.db.fetch(key))
        if len(stored) > cap:
            for raw in random.Random(len(stored)).sample(stored, len(stored) - cap):
                self.db.delete(key, raw)


def open_database(path):
    """The example database at ``path`` (a folder, created on first save), or None."""
    if path is None:
        return None
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(str(path))


def target_key(target) -> str:
    """A target's key in the database: its content hash and, within a file of several
    templates, which one."""
    return f"{target.sha256[:32]}/{target.template_name or '-'}"
