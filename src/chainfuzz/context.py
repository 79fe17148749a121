"""What a property receives: the target, its renderers, and what chainfuzz inferred about it."""

from __future__ import annotations

import datetime as _dt
from functools import cached_property

from . import markers as _markers
from .errors import Skip
from .render import DEFAULT_MAX_OUTPUT, DEFAULT_TIME_LIMIT, Renderer, RenderError
from .structure import Structure, learn_structure
from .targets import TemplateTarget


class TemplateContext:
    """One template target, rendered with transformers (the reference) or minijinja."""

    def __init__(self, target: TemplateTarget, *, time_limit: float = DEFAULT_TIME_LIMIT,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.target = target
        self.renderer = Renderer(target, time_limit=time_limit, max_output=max_output)

    def render(self, messages: list, *, tools: list | None = None,
               add_generation_prompt: bool = False, now: _dt.datetime | None = None) -> str:
        """The reference rendering; raises `RenderError`."""
        return self.renderer.render(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                    now=now)

    def render_or_skip(self, messages: list, *, tools: list | None = None,
                       add_generation_prompt: bool = False, now: _dt.datetime | None = None) -> str:
        """Render, or reject the input when the template refuses it.

        Properties other than ``template.renders`` use this: a crash is charged once, to
        ``template.renders``, and a deliberate ``raise_exception`` is a constraint, not a defect.
        """
        try:
            return self.render(messages, tools=tools, add_generation_prompt=add_generation_prompt, now=now)
        except RenderError as err:
            raise Skip(f"the template refuses the input: {err}") from None

    @cached_property
    def markers(self) -> tuple[str, ...]:
        """Control tokens and tag-like literals of the template, longest first."""
        return _markers.vocabulary(self.target.source, self.target.control_tokens)

    @cached_property
    def literal_text(self) -> str:
        """The template's literal text: a repr it writes itself is not a leak."""
        return _markers.literal_text(self.target.source)

    def template_writes(self, text: str) -> bool:
        """Whether ``text`` is short enough to occur by chance in the template's own text
        ("a" inside "assistant"), so finding it in a rendering proves nothing."""
        return len(text) <= 3 and text in self.literal_text

    def has_marker(self, text: str) -> bool:
        """Whether ``text`` spells any marker (then findings on it are the input's doing)."""
        return any(m in text for m in self.markers)

    @cached_property
    def turn_markers(self) -> list[_markers.TurnMarkers]:
        """How the template opens and closes turns, inferred from probe renderings."""
        return _markers.turn_markers(self.target.source, self.markers, self.structure.samples)

    @cached_property
    def structure(self) -> Structure:
        """Turn structure learned from probe renderings (add_generation_prompt=False)."""
        return learn_structure(lambda msgs: self.render(msgs))

    @cached_property
    def minijinja(self):
        from .minijinja_render import MiniJinjaRenderer

        return MiniJinjaRenderer(self.target, now=self.renderer.now)
