"""A library that may abort or hang, run in a process of its own and spoken to in JSON lines.

llama.cpp aborts the process on some inputs and vLLM needs its own Python, so neither runs in
chainfuzz's process. A `Worker` sends one JSON request per line and reads one JSON reply per
line; a worker that dies or hangs raises the caller's crash exception, with how it ended and
the last line it wrote to stderr, and the next call starts a fresh one.

Every wait is charged to the command's budget (`limits.call_timeout`): a worker cut short by
the budget's end raises `limits.BudgetExhausted`, not the crash exception. No worker outlives
chainfuzz: each dies with the process that started it (`limits.die_with_parent`), and a
worker in a process group of its own has a watcher that kills the whole group then.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

from . import limits

# The watcher of a worker's process group: a shell that waits for end of file on its stdin,
# whose other end only chainfuzz holds, then SIGKILLs the group ($0). It ends when chainfuzz
# does, however that ends, and kills what the worker started even after the worker is gone.
_GROUP_WATCHER = 'read -r _; kill -s KILL -- "-$0" 2>/dev/null'


class Worker:
    """The process ``argv``; ``crash`` is the exception a death or a hang raises, ``name``
    what its message calls the worker. With ``own_group`` it runs in a process group of its
    own and closing it kills the whole group (vLLM starts processes of its own)."""

    def __init__(self, argv: list[str], *, name: str, crash: type[Exception], env: dict | None = None,
                 own_group: bool = False) -> None:
        self.argv, self.name, self.crash = argv, name, crash
        self.env = env  # None: chainfuzz's own environment
        self.own_group = own_group
        self.proc: subprocess.Popen | None = None
        self._watcher: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start a fresh process (the old one, if any, is killed first)."""
        self.close()
        self.last_words()  # forget the old process' stderr
        parent = os.getpid()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, encoding="utf-8", env={**(self.env or os.environ), "PYTHONUNBUFFERED": "1"},
            start_new_session=self.own_group, preexec_fn=lambda: limits.die_with_parent(parent))
        if self.own_group:  # the leader dies with chainfuzz; what it started, with the watcher
            self._watcher = subprocess.Popen(["/bin/sh", "-c", _GROUP_WATCHER, str(self.proc.pid)],
                                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)

    def call(self, request: dict, timeout: float) -> dict:
        """Send ``request`` (starting the process if none runs) and return its reply."""
        if not self.running:
            self.start()
        self.last_words()  # the worker shares this file's offset: what follows is this call's
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # read() finds it dead and says how
        return self.read(timeout, request["op"])

    def read(self, timeout: float, what: str) -> dict:
        """The next reply, within ``timeout`` seconds (no later than the budget's end); else
        the crash exception, or `limits.BudgetExhausted` when the budget cut the wait short."""
        proc = self.proc
        seconds = limits.call_timeout(timeout)
        ready = []
        try:
            ready, _, _ = select.select([proc.stdout], [], [], seconds)
            line = proc.stdout.readline() if ready else ""
        except (OSError, ValueError):
            line = ""
        if line:
            return json.loads(line)
        if ready:
            try:
                proc.wait(timeout=2)  # it closed its stdout: let it finish dying
            except subprocess.TimeoutExpired:
                pass
        hung = proc.poll() is None
        self.close()
        if hung and (seconds < timeout or limits.out_of_budget()):
            raise limits.BudgetExhausted()
        timeout = seconds
        how = f"hung for {timeout:g} s" if hung else (
            f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}")
        raise self.crash(f"{self.name} died ({how}) on {what}{self.last_words()}")

    def last_words(self, *, first: bool = False) -> str:
        """The last line the worker wrote to stderr since the previous look (an abort's
        message), or the first (the cause, before the follow-ups); ``""`` if none."""
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
        self._stderr.seek(0)
        self._stderr.truncate()
        return f": {lines[0 if first else -1][:300]}" if lines else ""

    def close(self) -> None:
        """Kill the process (and its group) and wait until it is gone."""
        proc, self.proc = self.proc, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stdin.close()  # it kills the group and ends
            watcher.wait()
        if proc is None:
            return
        if self.own_group:
            kill_group(proc)
        else:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def serve(start: Callable[[], Callable[[dict], dict]]) -> None:
    """The worker's side: ``start()`` loads the library and returns the request handler, then
    each request line gets its reply line. A native library writes to fd 1 itself (an abort's
    message, say), so replies get their own copy of stdout and fd 1 points at stderr, before
    the library is loaded: nothing else lands in the reply stream."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    handle = start()
    for line in sys.stdin:
        out.write(json.dumps(handle(json.loads(line))) + "\n")
        out.flush()


def kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGKILL ``proc``'s process group (it was started with a session of its own) and wait
    up to ``grace`` seconds for the children too to be gone."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
    deadline = time.monotonic() + grace  # children outlive the leader briefly: let init reap them
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
