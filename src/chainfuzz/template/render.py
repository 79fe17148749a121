"""Rendering a target with transformers' own chat-template code, under time and size limits.

The reference renderer is ``transformers.utils.chat_template_utils.render_jinja_template``
(jinja2's ImmutableSandboxedEnvironment with transformers' globals and filters), called as
servers call it. Templates are untrusted: each render gets a wall-clock limit (SIGALRM, which
interrupts the pure-Python loops a hostile template runs) and an output-size limit.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import os
import signal
import threading
from dataclasses import dataclass

import jinja2

# transformers advises installing PyTorch on import; rendering templates needs no PyTorch.
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
from transformers.utils import chat_template_utils as _tcu

from ..errors import TargetError
from ..targets import Target

# Every render sees this instant unless a caller picks another, so outputs (and the crash
# records that store them) do not depend on when a check ran.
FIXED_NOW = _dt.datetime(2026, 1, 15, 12, 0, 0)

DEFAULT_TIME_LIMIT = 2.0
DEFAULT_MAX_OUTPUT = 1_000_000


class RenderError(Exception):
    """A render that did not produce text.

    ``kind`` is "raised" for the template's deliberate ``raise_exception(...)``, "timeout",
    "output_limit", or "error" for everything else (TypeError, UndefinedError, SecurityError...).
    """

    def __init__(self, kind: str, message: str, exc_type: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exc_type = exc_type

    @property
    def deliberate(self) -> bool:
        return self.kind == "raised"

    def __str__(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.kind != "raised" else self.message


class _Timeout(BaseException):
    """Raised by the alarm handler; BaseException so templates' own handling cannot catch it."""


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
    """Raise `_Timeout` in the main thread after ``seconds``; no limit elsewhere."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def classify(exc: BaseException) -> RenderError:
    """Turn an exception from rendering into a `RenderError` of the right kind."""
    # transformers' raise_exception raises the base TemplateError; jinja2's own errors
    # (UndefinedError, SecurityError, TemplateSyntaxError...) are subclasses of it.
    if type(exc) is jinja2.exceptions.TemplateError:
        return RenderError("raised", str(exc), "raise_exception")
    return RenderError("error", str(exc), type(exc).__name__)


@dataclass
class Renderer:
    """Renders one target's template the way transformers and servers do."""

    target: Target
    time_limit: float = DEFAULT_TIME_LIMIT
    max_output: int = DEFAULT_MAX_OUTPUT
    now: _dt.datetime = FIXED_NOW
    renders: int = 0

    def render(self, messages: list, *, tools: list | None = None,
               add_generation_prompt: bool = False, now: _dt.datetime | None = None) -> str:
        """The rendered prompt, or `RenderError`."""
        self.renders += 1
        try:
            with frozen_clock(now or self.now), time_limit(self.time_limit):
                rendered, _ = _tcu.render_jinja_template(
                    conversations=[messages],
                    tools=tools,
                    chat_template=self.target.source,
                    add_generation_prompt=add_generation_prompt,
                    **self.target.special_tokens,
                )
        except _Timeout:
            raise RenderError("timeout", f"render took longer than {self.time_limit:g}s",
                              "Timeout") from None
        except RecursionError:
            raise RenderError("error", "maximum recursion depth exceeded", "RecursionError") from None
        except MemoryError:
            raise RenderError("error", "out of memory while rendering", "MemoryError") from None
        except Exception as exc:  # anything a template can make jinja2 or Python raise
            raise classify(exc) from None
        text = rendered[0]
        if len(text) > self.max_output:
            raise RenderError("output_limit",
                              f"output of {len(text)} characters exceeds the limit of {self.max_output}",
                              "OutputLimit")
        return text


def check_compiles(target: Target, time_limit: float = DEFAULT_TIME_LIMIT) -> None:
    """Raise `TargetError` when the template does not compile (a syntax error, a hang)."""
    try:
        Renderer(target, time_limit=time_limit).render([])
    except RenderError as err:
        where = target.path if target.template_name is None else f"{target.path} ({target.name})"
        if err.exc_type in ("TemplateSyntaxError", "TemplateAssertionError"):
            raise TargetError(f"{where}: template does not compile: {err.message}") from None
        if err.exc_type == "RecursionError":
            raise TargetError(f"{where}: template is nested too deeply to compile") from None
        if err.kind == "timeout":
            raise TargetError(f"{where}: template did not compile within {time_limit:g}s") from None
