"""minijinja (the Rust engine behind Rust servers) set up to match transformers' environment.

Settings follow what transformers configures for jinja2: trim_blocks, lstrip_blocks, Python
method compatibility, a ``tojson`` that is ``json.dumps`` (minijinja's own HTML-escapes), the
``raise_exception`` and ``strftime_now`` globals, and transformers' ``{% generation %}`` tag
rewritten to a plain block. Fuel bounds the work a hostile template can do (string
repetition included: ``'a' * 10**10`` runs out of fuel, measured). minijinja hands templates
the caller's Python objects themselves (``messages.clear()`` empties the caller's list), so
every render gets deep copies: the case that becomes a reproducer is never the template's to
change.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import re

from ..internal.limits import is_native_panic
from .render import DEFAULT_MAX_OUTPUT, FIXED_NOW, RenderError
from ..targets import Target

FUEL = 50_000_000
_GENERATION = re.compile(r"\{%(-?)\s*(end)?generation\s*(-?)%\}")


class _Deliberate(Exception):
    """The template's own raise_exception(...)."""


def _raise_exception(message):
    raise _Deliberate(str(message))


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _rewrite_generation(source: str) -> str:
    return _GENERATION.sub(lambda m: f"{{%{m[1]} {'endif' if m[2] else 'if true'} {m[3]}%}}", source)


class MiniJinjaRenderer:
    """Renders a target with minijinja; raises `RenderError` like `render.Renderer`."""

    def __init__(self, target: Target, now: _dt.datetime = FIXED_NOW,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        import minijinja

        self._minijinja = minijinja
        self.target = target
        self.max_output = max_output
        self.env = minijinja.Environment(
            trim_blocks=True,
            lstrip_blocks=True,
            pycompat=True,
            fuel=FUEL,
            filters={"tojson": _tojson},
            globals={"raise_exception": _raise_exception,
                     "strftime_now": lambda fmt: now.strftime(fmt)},
        )
        self.compile_error: RenderError | None = None
        try:
            self.env.add_template("chat", _rewrite_generation(target.source))
        except minijinja.TemplateError as exc:
            self.compile_error = RenderError("error", first_line(str(exc)), "minijinja.TemplateSyntaxError")

    def render(self, messages: list, *, tools: list | None = None,
               add_generation_prompt: bool = False) -> str:
        if self.compile_error is not None:
            raise self.compile_error
        try:
            text = self.env.render_template(
                "chat", messages=copy.deepcopy(messages), tools=copy.deepcopy(tools), documents=None,
                add_generation_prompt=add_generation_prompt, **dict(self.target.special_tokens),
            )
        except BaseException as exc:
            raise self._classified(exc) from None
        if len(text) > self.max_output:
            raise RenderError("output_limit", f"output exceeds the limit of {self.max_output} characters",
                              "OutputLimit")
        return text

    def _classified(self, exc: BaseException) -> BaseException:
        """The `RenderError` a failed minijinja render is, or ``exc`` itself when it is not
        the template's doing (KeyboardInterrupt, the budget running out)."""
        if isinstance(exc, _Deliberate):
            return RenderError("raised", str(exc), "raise_exception")
        if is_native_panic(exc):  # a Rust panic inside minijinja
            return RenderError("error", first_line(str(exc)), "minijinja.Panic")
        if isinstance(exc, self._minijinja.TemplateError):
            line = re.search(r"\(in [^()]*:(\d+)\)", first_line(str(exc)))  # "... (in chat:2)"
            return RenderError("error", first_line(str(exc)), "minijinja.TemplateError",
                               int(line.group(1)) if line else None)
        if isinstance(exc, MemoryError):
            return RenderError("memory_limit", "the render ran out of the memory limit", "MemoryLimit")
        if isinstance(exc, Exception):  # a Python callback (tojson) failing on a minijinja value
            return RenderError("error", first_line(str(exc)), type(exc).__name__)
        return exc


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
