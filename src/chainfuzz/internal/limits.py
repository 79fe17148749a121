"""Limits that hold whatever a target does: the command's wall-clock budget, the memory of the
process that searches, and no process outliving the one that started it.

The budget is one deadline per command (``check --budget``, a sweep's row): every search,
structure learning, tokenizer load and engine or server call takes its timeouts from
`call_timeout`, and when the deadline passes raises `BudgetExhausted`, which ends the command
with what it found so far. A call cut short by the budget is not a hang of the target.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import time
from typing import Iterator


class BudgetExhausted(BaseException):
    """The command's wall-clock budget ran out. A BaseException, like KeyboardInterrupt, so no
    ``except Exception`` of a property, a template callback or a library swallows it."""


_deadline: float = math.inf  # time.monotonic() at which the command's budget runs out
# Shrinking a finding stops the budget's clock (`shrinking`): the budget bounds the search,
# and the time to shrink what it found comes on top, up to this share of the budget. In the
# 70-template sweep (90 s to search) 584 of 588 findings reached a fixed point within it, in
# 108 s; at 0.5 and 100 s the sweep took 141 s, past its 2-minute target.
SHRINK_ALLOWANCE = 0.2
_shrink_end: float = math.inf  # no shrink pushes the deadline past this monotonic time
_extended: float = 0.0  # seconds shrinking has stopped the clock for, in all


@contextlib.contextmanager
def budget(seconds: float | None, *, shrink_until: float | None = None) -> Iterator[None]:
    """Run the block under a wall-clock budget of ``seconds`` (None: none); nested budgets
    never extend an outer one. Shrinking findings (`shrinking`) may push the end back, to
    ``shrink_until`` at most (default: `SHRINK_ALLOWANCE` of ``seconds`` past the end)."""
    global _deadline, _shrink_end
    saved, saved_end, pushed = _deadline, _shrink_end, _extended
    if seconds is not None:
        now = time.monotonic()
        _deadline = min(saved, now + seconds)
        _shrink_end = min(saved_end, shrink_until if shrink_until is not None
                          else now + seconds * (1 + SHRINK_ALLOWANCE))
    try:
        yield
    finally:
        # An outer budget's clock stopped too while this block shrank.
        _deadline = min(saved + (_extended - pushed), max(saved, saved_end)) if saved != math.inf else saved
        _shrink_end = saved_end


@contextlib.contextmanager
def shrinking(seconds: float) -> Iterator[float]:
    """Shrink a finding with the budget's clock stopped: yields the monotonic time the shrink
    must end by (``seconds`` from now, and never past the budget's shrink end); afterwards
    the deadline is as much later as the shrink took. The search's own slices move with it
    (`extended`)."""
    global _deadline, _extended
    start = time.monotonic()
    saved = _deadline
    stop = start + seconds
    if saved != math.inf:
        stop = min(stop, max(_shrink_end, saved))
        _deadline = max(saved, stop)
    try:
        yield stop
    finally:
        took = time.monotonic() - start
        if saved == math.inf:
            _extended += took
        else:
            _deadline = min(saved + took, max(_shrink_end, saved))
            _extended += _deadline - saved


def extended() -> float:
    """Seconds shrinking has stopped the budget's clock for so far: a search's own deadlines
    move back by what this grows while they run."""
    return _extended


@contextlib.contextmanager
def overtime(seconds: float) -> Iterator[None]:
    """Let the block run up to ``seconds`` past the budget's end: finishing what was found
    (re-checking a reproducer before it is written) is never cut short."""
    global _deadline
    saved = _deadline
    if saved != math.inf:
        _deadline = max(saved, time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline = saved


def deadline() -> float:
    """The monotonic time the budget runs out (inf: no budget)."""
    return _deadline


def remaining() -> float:
    """Seconds left of the budget (inf: no budget)."""
    return _deadline - time.monotonic()


def out_of_budget() -> bool:
    return time.monotonic() >= _deadline


def check_budget() -> None:
    """Raise `BudgetExhausted` once the deadline has passed."""
    if time.monotonic() >= _deadline:
        raise BudgetExhausted()


def call_timeout(seconds: float) -> float:
    """The timeout of one call that may take ``seconds``: no later than the budget's end.
    When such a call times out and `out_of_budget` is true, the budget cut it short: raise
    `BudgetExhausted`, not the target's hang."""
    return max(0.01, min(seconds, remaining()))


# --- memory --------------------------------------------------------------------------------

# The data-segment limit of a searching process: the CLI with transformers imported uses
# ~300 MiB of it (measured: `check` on a template), a tokenizer.json of 30 MB loaded twice
# ~900 MiB; a hostile render gets the rest before Python raises MemoryError.
DEFAULT_MEMORY = 4 << 30


def limit_memory(max_bytes: int | None = DEFAULT_MEMORY) -> None:
    """Cap this process' data segment (heap and anonymous mappings: RLIMIT_DATA, which unlike
    RLIMIT_AS leaves shared libraries' and torch's reserved address space alone), so a
    hostile render gets MemoryError instead of the machine's memory. Never raises the limit
    above one already set from outside."""
    if max_bytes is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    ceiling = hard if hard != resource.RLIM_INFINITY else max_bytes
    if soft != resource.RLIM_INFINITY:
        ceiling = min(ceiling, soft)
    resource.setrlimit(resource.RLIMIT_DATA, (min(max_bytes, ceiling), hard))


# --- processes -----------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when the thread that forked it exits (Linux's
    parent-death signal); a no-op elsewhere. Call it first thing in a forked child, or as a
    subprocess' ``preexec_fn`` (it only calls into libc). ``parent``: the pid the parent had
    before forking; a child whose parent already died before the signal was armed exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process' own symbols: libc's prctl
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


# --- native libraries ----------------------------------------------------------------------

def is_native_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic surfacing through PyO3 (tokenizers, minijinja):
    ``pyo3_runtime.PanicException`` derives from BaseException, so ``except Exception``
    misses it, and its module is made at run time, so it is known by name."""
    return type(exc).__name__ == "PanicException"
