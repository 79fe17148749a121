"""What a running campaign shows on stderr: a live display on a terminal, plain lines elsewhere.

On a terminal, a few lines redrawn in place twice a second (time left, pairs running, inputs
per second, findings so far), with events (a new finding, a hung pair) printed above them.
Elsewhere (a cron job's log, CI), each event as a line and a status line every
`PLAIN_INTERVAL` seconds, so a log shows progress without a line per slice.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..internal.text import printable

PLAIN_INTERVAL = 30.0
REDRAW_INTERVAL = 0.5


class Progress:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self._drawn = 0  # lines of the live display on screen
        self._last = 0.0

    def event(self, text: str) -> None:
        self._clear()
        print(f"chainfuzz campaign: {printable(text, 400)}", file=self.out, flush=True)

    def status(self, s: dict) -> None:
        now = time.monotonic()
        if now - self._last < (REDRAW_INTERVAL if self.tty else PLAIN_INTERVAL):
            return
        self._last = now
        left = f"{int(s['left']) // 60}:{int(s['left']) % 60:02d} left"
        line = (f"{self.name}: {left}, {len(s['running'])} of {s['pairs']} pairs running, "
                f"{s['rate']:.0f} inputs/s, {s['findings']} finding(s)")
        if not self.tty:
            print(f"chainfuzz campaign: {printable(line, 400)}", file=self.out, flush=True)
            return
        self._clear()
        lines = [line] + [f"  running {printable(p, 100)}" for p in s["running"][:8]]
        print("\n".join(lines), file=self.out, flush=True)
        self._drawn = len(lines)

    def close(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self.tty and self._drawn:
            print(f"\033[{self._drawn}F\033[J", end="", file=self.out, flush=True)
            self._drawn = 0
