"""Exceptions that cross module boundaries.

`Failure` is what a property raises when its invariant does not hold; `TargetError` and
`UsageError` are bad input, reported as one line and exit code 2 by the CLI. `PropertyFailed`
is what a fuzz harness in crash mode lets escape, so that libFuzzer stops and reports it.
"""

from __future__ import annotations

from typing import Callable, Iterable

from hypothesis.errors import UnsatisfiedAssumption

from .internal.text import printable


class ChainfuzzError(Exception):
    """Base of chainfuzz's own errors."""


class TargetError(ChainfuzzError):
    """A target (template, model folder, GGUF) that cannot be read or compiled."""


class UsageError(ChainfuzzError):
    """A bad flag, property id or path given by the user."""


class Failure(AssertionError):
    """A property's invariant does not hold for one input.

    ``key`` names the kind of defect in a way that is stable across inputs and versions (no
    offsets, no generated text); it feeds the de-duplication signature. ``severity`` overrides
    the property's default, e.g. a whitespace-only difference is a warning where a dropped
    message is an error. ``lenient`` names a rule of the property's own by which the input
    is one no implementation can be held to (a reply that spells its format's markers): the
    runner treats it as a lenient input (`chainfuzz.schema`), so a finding only such inputs
    reach is a warning keyed ``lenient[rule]:...``, and shrinking may leave it but not enter it.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        observed: object = None,
        expected: object = None,
        severity: str | None = None,
        rendered: str | None = None,
        lenient: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.observed = observed
        self.expected = expected
        self.severity = severity
        self.rendered = rendered
        self.lenient = lenient
        self.case: dict | None = None  # filled in by the runner with the (shrunk) input
        self.failing: list[str] = []  # set by `each`: the names of every item failing this way


class PropertyFailed(AssertionError):
    """A property's failure raised out of a fuzz harness in crash mode (OSS-Fuzz, ClusterFuzzLite).

    Each property has a subclass of its own (`chainfuzz.fuzz.crash.failure_type`), so a crash
    report names the property in its exception type; the message says property, key and target.
    """

    def __init__(self, prop_id: str, key: str, target: str) -> None:
        # keys and target names come from targets (file names, template errors): escaped
        super().__init__(f"property {prop_id} failed on {printable(target, 200)}: "
                         f"{printable(key, 400)}")
        self.property = prop_id
        self.key = key
        self.target = target


class Skip(UnsatisfiedAssumption):
    """The input does not apply to the property (the template refuses it, it spells a marker...).

    A subclass of Hypothesis' own rejection, so a search simply draws another input, while a
    replay outside any search reports the case as skipped.
    """


class Unsupported(Skip):
    """An implementation has no way to do what a property asks (an engine without a prefix
    cache or streaming...): `each` leaves it out, and skips the input if none can."""


def each(items: Iterable, check_one: Callable[[object], None], *,
         name: Callable[[object], str] = lambda item: item.name,
         key: Callable[[list[str], str], str] = lambda names, kind: "+".join(names) + ":" + kind) -> None:
    """Run ``check_one(item)`` on every item (tokenizer implementations, chains, engines), so
    one item's defect never hides another's, and raise the first `Failure`, named with every
    item that fails the same way.

    Failures are keyed ``"NAME:KIND"``; the one raised gets the key ``key(names, kind)`` and a
    message naming them all. An item that raises `Unsupported` is left out; when every item
    is, the input is skipped.
    """
    ran, failures = False, []
    for item in items:
        try:
            check_one(item)
        except Unsupported:
            continue
        except Failure as failure:
            failures.append((name(item), failure))
        ran = True
    if failures:
        raise _named_together(failures, key)
    if not ran:
        raise Skip("no implementation of this run supports the property")


def _named_together(failures: list[tuple[str, Failure]], key) -> Failure:
    name, first = failures[0]
    kind = first.key.removeprefix(name + ":")
    names = [name, *(n for n, f in failures[1:] if f.key.removeprefix(n + ":") == kind)]
    first.key = key(names, kind)
    first.failing = names
    if len(names) > 1:
        rest = first.message.removeprefix(name) if first.message.startswith(name) else ": " + first.message
        first.message = ", ".join(names) + rest
    return first


def assume(condition: object, reason: str = "input does not apply") -> None:
    """Skip the current input unless ``condition`` holds."""
    if not condition:
        raise Skip(reason)
