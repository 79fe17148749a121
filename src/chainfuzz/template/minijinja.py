"""minijinja (the Rust engine behind Rust servers) set up to match transformers' environment.

Settings follow what transformers configures for jinja2: trim_blocks, lstrip_blocks, Python
method compatibility, a ``tojson`` that is ``json.dumps`` (minijinja's own HTML-escapes), the
``raise_exception`` and ``strftime_now`` globals, and transformers' ``{% generation %}`` tag
rewritten to a plain block. Fuel bounds the work a hostile template can do.
"""

from __future__ import annotations

import datetime as _dt
import json
import re

from .render import FIXED_NOW, RenderError
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

    def __init__(self, target: Target, now: _dt.datetime = FIXED_NOW) -> None:
        import minijinja

        self._minijinja = minijinja
        self.target = target
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
            return self.env.render_template(
                "chat", messages=messages, tools=tools, documents=None,
                add_generation_prompt=add_generation_prompt, **self.target.special_tokens,
            )
        except _Deliberate as exc:
            raise RenderError("raised", str(exc), "raise_exception") from None
        except self._minijinja.TemplateError as exc:
            raise RenderError("error", first_line(str(exc)), "minijinja.TemplateError") from None
        except Exception as exc:  # a Python callback (tojson) failing on a minijinja value
            raise RenderError("error", first_line(str(exc)), type(exc).__name__) from None


def first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
