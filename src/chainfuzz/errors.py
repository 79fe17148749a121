"""Exceptions that cross module boundaries.

`Failure` is what a property raises when its invariant does not hold; `TargetError` and
`UsageError` are bad input, reported as one line and exit code 2 by the CLI.
"""

from __future__ import annotations

from hypothesis.errors import UnsatisfiedAssumption


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
    message is an error.
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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.observed = observed
        self.expected = expected
        self.severity = severity
        self.rendered = rendered
        self.case: dict | None = None  # filled in by the runner with the (shrunk) input


class Skip(UnsatisfiedAssumption):
    """The input does not apply to the property (the template refuses it, it spells a marker...).

    A subclass of Hypothesis' own rejection, so a search simply draws another input, while a
    replay outside any search reports the case as skipped.
    """


def named_together(failures: list[tuple[str, Failure]]) -> Failure:
    """The first of ``(name, failure)`` pairs from implementations or engines checked on one
    input, its key and message naming every one that fails the same way ("NAME:KIND" keys,
    messages that start with the name): one's defect never hides another's."""
    name, first = failures[0]
    kind = first.key.removeprefix(name + ":")
    names = [name, *(n for n, f in failures[1:] if f.key.removeprefix(n + ":") == kind)]
    if len(names) > 1:
        first.key = "+".join(names) + ":" + kind
        first.message = ", ".join(names) + first.message.removeprefix(name)
    return first


def assume(condition: object, reason: str = "input does not apply") -> None:
    """Skip the current input unless ``condition`` holds."""
    if not condition:
        raise Skip(reason)
