"""The hostile corpus' harness: run the CLI on one hostile input in a child process and
measure what the contract promises (exit code, one error line, wall time, peak memory,
every case file on disk and parseable).

Set ``CHAINFUZZ_HOSTILE_LOG=FILE`` to append one JSON line per run (class, input, exit code,
seconds, peak MiB, whether the contract held); ``python tests/hostile/table.py FILE`` turns
it into the README's table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOG = os.environ.get("CHAINFUZZ_HOSTILE_LOG")

# What a contained run may cost: the default memory limit of a searching process (4096 MiB of
# data segment) and the interpreter's code and libraries around it (a check of a clean
# template peaks at ~80 MiB, measured).
PEAK_MIB = 4600


@dataclass
class HostileRun:
    """One CLI run on a hostile input, measured from the outside."""

    args: list[str]
    rc: int
    out: str
    err: str
    seconds: float
    peak_mib: float  # the largest RSS of the CLI process or any of its waited-for children
    cwd: Path
    crashes: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def cases(self) -> list[dict]:
        """Every file in the crash folder, each parsed as JSON (a failure to parse fails)."""
        if self.crashes is None or not self.crashes.exists():
            return []
        leftovers = [p.name for p in self.crashes.iterdir() if p.suffix != ".json"]
        assert not leftovers, f"stray files in the crash folder: {leftovers}"
        out = []
        for p in sorted(self.crashes.glob("*.json")):
            raw = p.read_bytes()
            raw.decode("utf-8")  # strict: a case file is UTF-8
            out.append(json.loads(raw))
        return out


# Starts the CLI and reports its peak RSS. A process' ``ru_maxrss`` counts the memory of the
# process it was forked from until its exec (a child of pytest starts at pytest's ~600 MiB),
# so the CLI is forked from this small interpreter instead, which reaps it with ``wait4`` (the
# largest RSS of the CLI and of every descendant it reaped) and writes it, with the CLI's wait
# status, to the pipe named by its first argument.
_LAUNCHER = """
import os, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(fd, f"{usage.ru_maxrss} {status}".encode())
"""


def _run(args, *, cwd: Path, timeout: float, env: dict | None, stdin=None) -> HostileRun:
    """Run ``python -m chainfuzz ARGS`` through `_LAUNCHER`; kill its whole session at ``timeout``."""
    peak_read, peak_write = os.pipe()
    argv = [sys.executable, "-S", "-c", _LAUNCHER, str(peak_write),
            sys.executable, "-m", "chainfuzz", *map(str, args)]
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL if stdin is None else stdin, pass_fds=(peak_write,),
                            start_new_session=True, env={**os.environ, "COLUMNS": "200", **(env or {})})
    os.close(peak_write)
    killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, 9))
    killer.start()
    try:
        out, err = proc.communicate()
    finally:
        killer.cancel()
    seconds = time.monotonic() - start
    with os.fdopen(peak_read, "rb") as f:
        peak_kib, status = map(int, (f.read() or b"0 9").split())  # nothing: the launcher was killed
    rc = os.waitstatus_to_exitcode(status)
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if seconds >= timeout:
        pytest.fail(f"chainfuzz {' '.join(map(str, args))} ran past {timeout:g}s\n{err[-2000:]}")
    return HostileRun([str(a) for a in args], rc, out, err, seconds, peak_kib / 1024, cwd)


@pytest.fixture
def hostile(tmp_path, request):
    """``hostile(cls, name, *args, timeout=, expect_rc=, one_line=, max_seconds=, env=)``
    runs the CLI from an empty folder and asserts the contract common to every class:
    no traceback, the expected exit code, exactly one sanitised error line when refused,
    no file left in the current folder, bounded time and memory, parseable case files.
    Returns the `HostileRun` for class-specific checks."""

    def run(cls: str, name: str, *args, timeout: float = 120, expect_rc=(0, 1, 2),
            one_line: bool | None = None, max_seconds: float | None = None,
            env: dict | None = None, crashes: Path | None = None, stdin=None) -> HostileRun:
        cwd = tmp_path / f"cwd-{len(list(tmp_path.glob('cwd-*')))}"
        cwd.mkdir()
        crashes = crashes or (tmp_path / "crashes")
        r = _run(args, cwd=cwd, timeout=timeout, env=env, stdin=stdin)
        r.crashes = crashes
        ok = False
        try:
            expected = (expect_rc,) if isinstance(expect_rc, int) else tuple(expect_rc)
            assert "Traceback" not in r.err + r.out, r.err[-3000:]
            assert r.rc in expected, (r.rc, r.err[-2000:], r.out[-2000:])
            if one_line or (one_line is None and r.rc == 2):
                assert len(r.err_lines) == 1, r.err
                assert r.err_lines[0].startswith("chainfuzz: error: "), r.err
            assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x9b]", r.out + r.err), \
                "a control character reached the terminal"
            stray = sorted(p.name for p in cwd.iterdir())
            assert not stray, f"files left in the current folder: {stray}"
            if max_seconds is not None:
                assert r.seconds <= max_seconds, f"took {r.seconds:.1f}s (bound {max_seconds}s)"
            assert r.peak_mib <= PEAK_MIB, f"peak RSS {r.peak_mib:.0f} MiB"
            r.cases()
            ok = True
        finally:
            if LOG:
                with open(LOG, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"class": cls, "input": name, "rc": r.rc,
                                        "seconds": round(r.seconds, 1), "peak_mib": round(r.peak_mib),
                                        "ok": ok, "test": request.node.nodeid}) + "\n")
        return r

    return run
