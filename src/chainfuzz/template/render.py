"""Rendering a target with transformers' own chat-template code, under time, size and memory limits.

The reference renderer is ``transformers.utils.chat_template_utils.render_jinja_template``
(jinja2's ImmutableSandboxedEnvironment with transformers' globals and filters), called as
servers call it. Templates are untrusted: each render gets a wall-clock limit (SIGALRM, which
interrupts the pure-Python loops a hostile template runs, and never outlasts the command's
budget), an output-size limit checked while the output is produced, and a MemoryError (the
searching process runs under `chainfuzz.internal.limits.limit_memory`) is the template's
finding too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import jinja2

# transformers advises installing PyTorch on import; rendering templates needs no PyTorch.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
from transformers.utils import chat_template_utils as _tcu

from ..errors import TargetError
from ..internal import limits
from ..internal.text import clip
from ..targets import Target

# Every render sees this instant unless a caller picks another, so outputs (and the crash
# records that store them) do not depend on when a check ran.
FIXED_NOW = _dt.datetime(2026, 1, 15, 12, 0, 0)

DEFAULT_TIME_LIMIT = 2.0
DEFAULT_MAX_OUTPUT = 1_000_000
# Characters of a template's error message kept (real templates' messages are under 300).
MAX_MESSAGE = 2_000
# A template that timed out this many renders in a row hangs on (nearly) everything: its
# later renders get a tenth of the limit (real templates render in under 50 ms; the limit is
# 2 s), so one such template costs a check seconds, not the 9 properties x 300 tries x 2 s
# it cost before. One render that finishes restores the full limit.
HANG_STREAK = 3
# An alarm that lands while a gc callback runs (Hypothesis installs one) raises there, and
# Python swallows it as "unraisable": a conversion the alarm should have stopped ran on for
# its full 20 s (seen in the test suite). It is raised again this soon after. (A timer that
# repeats instead raised into contextlib's __exit__ while a 400 MB render unwound, leaving a
# block that never disarmed.)
SWALLOWED_RETRY = 0.01


class RenderError(Exception):
    """A render that did not produce text.

    ``kind`` is "raised" for the template's deliberate ``raise_exception(...)``, "timeout",
    "output_limit", "memory_limit", or "error" for everything else (TypeError,
    UndefinedError, SecurityError...). The message is clipped to `MAX_MESSAGE` characters.
    """

    def __init__(self, kind: str, message: str, exc_type: str, line: int | None = None) -> None:
        message = clip(message, MAX_MESSAGE)
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exc_type = exc_type
        self.line = line  # the template line jinja2 names for the error, where it names one

    @property
    def site(self) -> str | None:
        """Where in the template it failed ("line 12"), for keys that tell two defects raising
        the same exception apart; None where jinja2 does not say."""
        return None if self.line is None else f"line {self.line}"

    @property
    def deliberate(self) -> bool:
        return self.kind == "raised"

    def __str__(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.kind != "raised" else self.message


class TimeLimitExceeded(BaseException):
    """Raised by `time_limit`'s alarm; a BaseException so templates' own handling (and a
    library's ``except Exception``) cannot catch it. Callers outside this module (tokenizer
    loads) catch it to say what took too long."""


class _OutputLimit(BaseException):
    """Raised while joining a render's output once it passes the size limit (a BaseException:
    jinja2's ``except Exception`` around the join must not rewrite it)."""


_max_output: int | None = None  # the limit of the render in progress; None outside `Renderer.render`


def _bounded_concat(chunks) -> str:
    """jinja2's ``Environment.concat`` (``"".join``), counting as the chunks come: a loop
    yielding 300 KB a step stops at the limit instead of at the memory limit."""
    if _max_output is None:
        return "".join(chunks)
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > _max_output:
            raise _OutputLimit()
        out.append(chunk)
    return "".join(out)


def _bound_output(source: str) -> None:
    """Make the environment transformers compiled ``source`` in join output with
    `_bounded_concat`. Only the join changes: the output is the same text."""
    env = _tcu._compile_jinja_template(source).environment  # lru-cached: this is the one it renders with
    if env.concat is not _bounded_concat:
        env.concat = _bounded_concat


@functools.lru_cache(maxsize=8)
def _frozen_datetime(when: _dt.datetime) -> type:
    """A ``datetime`` class whose ``now()`` is ``when`` (built once per instant, not per render)."""

    class _Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return when if tz is None else when.replace(tzinfo=tz)

    return _Frozen


@contextlib.contextmanager
def frozen_clock(when: _dt.datetime):
    """Make transformers' ``strftime_now`` global see ``when``."""
    saved = _tcu.datetime
    _tcu.datetime = _frozen_datetime(when)
    try:
        yield
    finally:
        _tcu.datetime = saved


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise `TimeLimitExceeded` in the main thread after ``seconds``; no limit elsewhere. Nothing
    starts once the command's budget has run out (`chainfuzz.internal.limits.BudgetExhausted`),
    but a render started before keeps its own limit, so a budget shorter than the limit still
    finds a hang and overruns by at most one limit; with ``seconds`` 0 the budget's end is
    the limit. Nests: an outer limit that ends sooner stays in charge, and an outer limit's
    timer is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    limits.check_budget()
    wait, exc = (seconds, TimeLimitExceeded) if seconds > 0 else (limits.remaining(), limits.BudgetExhausted)
    outer_left, outer_every = signal.getitimer(signal.ITIMER_REAL)
    if wait == float("inf") or (outer_left and outer_left <= wait):
        yield  # no limit, or the outer one fires first
        return
    start = time.monotonic()
    live = [True]

    def _alarm(signum, frame):
        if live[0]:  # not a signal an earlier block left pending
            raise exc()

    def _unraisable(unraisable):
        if live[0] and isinstance(unraisable.exc_value, exc):
            signal.setitimer(signal.ITIMER_REAL, SWALLOWED_RETRY)
        else:
            previous_hook(unraisable)

    previous_hook = sys.unraisablehook
    previous = signal.signal(signal.SIGALRM, _alarm)
    sys.unraisablehook = _unraisable
    try:  # armed inside the try: whatever interrupts what follows, the finally disarms
        signal.setitimer(signal.ITIMER_REAL, wait)
        yield
    finally:
        live[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_left - (time.monotonic() - start)),
                             outer_every)


@contextlib.contextmanager
def limited(seconds: float):
    """`time_limit` for untrusted template code run outside `Renderer` (transformers' own
    ``apply_chat_template``): running out of time is a `RenderError`, which callers handle."""
    try:
        with time_limit(seconds):
            yield
    except TimeLimitExceeded:
        raise RenderError("timeout", f"render took longer than {seconds:g}s", "Timeout") from None


def classify(exc: BaseException) -> RenderError:
    """Turn an exception from rendering into a `RenderError` of the right kind."""
    # transformers' raise_exception raises the base TemplateError; jinja2's own errors
    # (UndefinedError, SecurityError, TemplateSyntaxError...) are subclasses of it.
    if type(exc) is jinja2.exceptions.TemplateError:
        return RenderError("raised", str(exc), "raise_exception", _template_line(exc))
    return RenderError("error", str(exc), type(exc).__name__, _template_line(exc))


def _template_line(exc: BaseException) -> int | None:
    """The template line the error was raised at: jinja2 rewrites a render's traceback so its
    innermost "<template>" frame carries the template's own line number."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@dataclass
class Renderer:
    """Renders one target's template the way transformers and servers do."""

    target: Target
    time_limit: float = DEFAULT_TIME_LIMIT
    max_output: int = DEFAULT_MAX_OUTPUT
    now: _dt.datetime = FIXED_NOW
    renders: int = 0
    timeouts_in_a_row: int = 0

    @property
    def hangs(self) -> bool:
        """Whether the last `HANG_STREAK` renders all timed out."""
        return self.timeouts_in_a_row >= HANG_STREAK

    def render(self, messages: list, *, tools: list | None = None,
               add_generation_prompt: bool = False, now: _dt.datetime | None = None) -> str:
        """The rendered prompt, or `RenderError`."""
        global _max_output
        self.renders += 1
        seconds = self.time_limit / 10 if self.hangs else self.time_limit
        try:
            _bound_output(self.target.source)
            _max_output = self.max_output
            with frozen_clock(now or self.now), time_limit(seconds):
                rendered, _ = _tcu.render_jinja_template(
                    conversations=[messages],
                    tools=tools,
                    chat_template=self.target.source,
                    add_generation_prompt=add_generation_prompt,
                    **self.target.special_tokens,
                )
        except TimeLimitExceeded:
            self.timeouts_in_a_row += 1
            raise RenderError("timeout", f"render took longer than {seconds:g}s", "Timeout") from None
        except _OutputLimit:
            raise _output_limit(self.max_output) from None
        except RecursionError:
            raise RenderError("error", "maximum recursion depth exceeded", "RecursionError") from None
        except MemoryError:
            raise RenderError("memory_limit", "the render ran out of the memory limit",
                              "MemoryLimit") from None
        except Exception as exc:  # anything a template can make jinja2 or Python raise
            raise classify(exc) from None
        finally:
            _max_output = None
        self.timeouts_in_a_row = 0
        text = rendered[0]
        if len(text) > self.max_output:  # transformers' own edits after the join
            raise _output_limit(self.max_output)
        return text


def _output_limit(limit: int) -> RenderError:
    return RenderError("output_limit", f"output exceeds the limit of {limit} characters", "OutputLimit")


def check_compiles(target: Target, seconds: float = DEFAULT_TIME_LIMIT) -> None:
    """Raise `TargetError` when the template does not compile (a syntax error, nesting too
    deep, a compile that takes longer than ``seconds``). Only compiles: a template that
    hangs or fails when rendered is a finding of ``template.renders``, not bad input."""
    where = target.path if target.template_name is None else f"{target.path} ({target.name})"
    try:
        with time_limit(seconds):
            _tcu._compile_jinja_template(target.source)
    except TimeLimitExceeded:
        raise TargetError(f"{where}: template did not compile within {seconds:g}s") from None
    except RecursionError:
        raise TargetError(f"{where}: template is nested too deeply to compile") from None
    except MemoryError:
        raise TargetError(f"{where}: template ran out of memory while compiling") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TargetError(f"{where}: template does not compile: {clip(str(exc), 300)}") from None
    except Exception as exc:  # noqa: BLE001 - TemplateAssertionError, a bad extension use...
        raise TargetError(f"{where}: template does not compile: "
                          f"{type(exc).__name__}: {clip(str(exc), 300)}") from None
