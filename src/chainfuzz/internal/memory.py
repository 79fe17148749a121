"""What a search remembers between runs: its failures and its interesting inputs.

Stored in a Hypothesis example database (`hypothesis.database`: a folder by default, or any
other, such as ``RedisExampleDatabase`` shared by several workers), under keys made of the
target's fingerprint and the property id. Values are the cases themselves as JSON, not
Hypothesis' choice sequences: those are replayed through the strategy, and the strategy of
a template depends on what chainfuzz learned about it (`template.constraints`), so a choice
sequence saved last night would draw a different conversation tonight after either changed.
A case replays the same input whatever generated it. A rerun checks the failures first,
then seeds the mutation mode with the interesting inputs (`internal.mutate`).

Shared through Redis (`open_database` with a URL: a local folder and the server, written
alike), a failure one worker saves is fetched by the others' searches between their slices
(`Memory.new_failures`), replayed, shrunk and recorded there too.
"""

from __future__ import annotations

import json
import random
import re
import sys
from typing import Iterable

from ..errors import UsageError
from .text import dumps_json

# Interesting inputs kept per (target, property): enough to seed mutation with varied
# structure; pruned at random past it, so the store stays small whatever the run length.
MAX_CORPUS = 200
# Failures kept per (target, property): minimal reproducers, one per defect key found.
MAX_FAILURES = 50
# Seconds a Redis server has to accept the connection and answer PING when the database is
# opened, and to answer each command after: one on 127.0.0.1 returned 50 failures in 0.5 ms.
REDIS_TIMEOUT = 2.0


class Memory:
    """One search's view of the database: ``failures`` and ``corpus`` under its own keys."""

    def __init__(self, database, target_key: str, prop_ids: Iterable[str]) -> None:
        self.db = database
        self.keys = {pid: f"chainfuzz/v1/{target_key}/{pid}".encode("utf-8", "surrogatepass")
                     for pid in prop_ids}
        self._pending: dict[bytes, dict[str, None]] = {}  # corpus entries not yet written
        # Why the database could not be read or written; then it is neither.
        self.broken: str | None = None
        # (property id, JSON text) of the failures handed out by `failures` or saved here.
        self._seen: set[tuple[str, bytes]] = set()

    def _fetch(self, key: bytes) -> list[tuple[bytes, dict]]:
        """(stored text, case) of the cases under ``key``; a database that cannot be read
        remembers nothing from then on."""
        out: list[tuple[bytes, dict]] = []
        if self.broken is not None:
            return out
        try:
            stored = list(self.db.fetch(key))
        except _errors() as exc:
            self.broken = f"{type(exc).__name__}: {exc}"
            return out
        for raw in stored:
            try:
                case = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue  # written by something else, or truncated: not ours to replay
            if isinstance(case, dict):
                out.append((raw, case))
        return out

    def failures(self) -> list[tuple[str, dict]]:
        """(property id, input) of every property's remembered failures, smallest first."""
        return self._failures(new_only=False)

    def new_failures(self) -> list[tuple[str, dict]]:
        """`failures` not handed out before nor saved by this memory: those another process
        saved since. One fetch per property."""
        return self._failures(new_only=True)

    def _failures(self, new_only: bool) -> list[tuple[str, dict]]:
        cases = []
        for pid, key in self.keys.items():
            for raw, case in self._fetch(key + b"/failures"):
                if not (new_only and (pid, raw) in self._seen):
                    self._seen.add((pid, raw))
                    cases.append((pid, case))
        return sorted(cases, key=lambda pc: len(dumps_json(pc[1])))

    def corpus(self) -> list[dict]:
        return [c for key in self.keys.values() for _, c in self._fetch(key + b"/corpus")]

    def save_failure(self, prop_id: str, case: dict) -> None:
        """Written at once, like the case file: a killed run keeps it."""
        key, raw = self.keys[prop_id] + b"/failures", dumps_json(case).encode("utf-8")
        self._seen.add((prop_id, raw))
        self._write(lambda: (self.db.save(key, raw), self._prune(key, MAX_FAILURES)))

    def _write(self, action) -> None:
        """Run a write; a database that cannot be written (a full disk, a read-only folder, a
        Redis server gone) stops being used, and the search goes on: the case files hold the
        findings."""
        if self.broken is None:
            try:
                action()
            except _errors() as exc:
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


def _errors() -> tuple[type[BaseException], ...]:
    """What a database raises when it cannot be used: OSError for a folder; for Redis, the
    client's errors, which are not OSErrors (a connection lost or refused, a timeout, a server
    refusing writes: out of memory, a read-only replica). Redis is imported only by
    `open_database` with a URL, so without it no database can raise them."""
    redis_errors = sys.modules.get("redis.exceptions")
    return (OSError,) if redis_errors is None else (OSError, redis_errors.RedisError)


def open_database(path, redis_url: str | None = None):
    """The example database at ``path`` (a folder, created on first save), or None; with
    ``redis_url``, that folder and a Redis server's database written alike (Hypothesis'
    ``MultiplexedDatabase``), read from the folder first. A URL that is malformed, or whose
    server does not answer PING within `REDIS_TIMEOUT`, is a `UsageError`."""
    from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase

    local = None if path is None else DirectoryBasedExampleDatabase(str(path))
    if redis_url is None:
        return local
    shared = _redis_database(redis_url)
    return shared if local is None else MultiplexedDatabase(local, shared)


def _redis_database(url: str):
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise UsageError("sharing the example database through Redis needs the redis package: "
                         "pip install 'chainfuzz[campaign]'") from None
    shown = safe_url(url)
    try:
        # One retry, at once, whatever redis-py's default: a connection the server closed
        # while idle is opened again, and a call to a server gone costs 2 x REDIS_TIMEOUT at
        # most (refused: 1 ms, measured on 127.0.0.1).
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                      socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 1))
    except ValueError as exc:
        raise UsageError(f"{shown} is not a Redis URL (redis://[:password@]host[:port][/db]): "
                         f"{_without_password(str(exc), url)}") from None
    try:
        client.ping()
    except (OSError, redis.exceptions.RedisError) as exc:
        client.close()
        raise UsageError(f"the Redis server at {shown} did not answer PING within {REDIS_TIMEOUT:g}s "
                         f"({_without_password(str(exc), url) or type(exc).__name__})") from None
    # Cases expire after 8 days unread (Hypothesis' default): a nightly campaign reads them.
    return RedisExampleDatabase(client, key_prefix=b"chainfuzz:")


# The user information of a URL (up to its last "@" before the path), and a password given
# in its query (redis-py reads ``?password=``).
_USERINFO = re.compile(r"(?<=//)([^/?#]*)@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def safe_url(url: str) -> str:
    """``url`` fit to show: its password (``redis://user:PASSWORD@host``, ``?password=``)
    replaced by ``***``, and a user part alone too (``redis://SECRET@host``: some clients take
    it for the password). Textual, so a malformed URL is shown safely too."""
    def userinfo(m: re.Match) -> str:
        user, colon, _ = m.group(1).partition(":")
        return f"{user}:***@" if colon else "***@"

    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO.sub(userinfo, url))


def _without_password(text: str, url: str) -> str:
    """``text`` (an error about ``url``) with what `safe_url` hides in ``url`` hidden."""
    m = _USERINFO.search(url)
    secrets = [m.group(1).partition(":")[2] or m.group(1)] if m else []
    secrets += [p for _, p in _QUERY_PASSWORD.findall(url)]
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def target_key(target) -> str:
    """A target's key in the database: its content hash and, within a file of several
    templates, which one."""
    return f"{target.sha256[:32]}/{target.template_name or '-'}"
