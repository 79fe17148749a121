"""What a property receives: the target, its renderers and tokenizers, and what chainfuzz
inferred about them."""

from __future__ import annotations

import datetime as _dt
from functools import cached_property
from pathlib import Path

from .errors import Skip, UsageError
from .kinds import kind, recognised
from .kinds import names as kind_names
from .targets import Target
from . import strategies as _strategies
from .template import markers as _markers
from .template.constraints import PROBE_TOOLS, Accepts, learn_accepts
from .template.render import DEFAULT_MAX_OUTPUT, DEFAULT_TIME_LIMIT, Renderer, RenderError
from .template.structure import Structure, learn_structure


class Context:
    """One target: its template, rendered with transformers (the reference) or minijinja, and
    its tokenizer implementations, loaded on first use."""

    def __init__(self, target: Target, *, time_limit: float = DEFAULT_TIME_LIMIT,
                 max_output: int = DEFAULT_MAX_OUTPUT, engines: tuple[str, ...] = ("transformers",),
                 parsers: tuple[str, ...] = ()) -> None:
        self.target = target
        self.engine_specs = tuple(engines)
        self.parser_specs = tuple(parsers)  # ``--parser`` specs; "auto" is the family's
        self.renderer = Renderer(target, time_limit=time_limit, max_output=max_output)
        self._last: tuple | None = None  # (messages, tools, flag, now, output or RenderError)

    def render(self, messages: list, *, tools: list | None = None, add_generation_prompt: bool = False,
               now: _dt.datetime | None = None, fresh: bool = False) -> str:
        """The reference rendering; raises `RenderError`.

        The last rendering is kept for the very same ``messages`` and ``tools`` objects: the
        properties searched together check one drawn case in turn, and each renders it (five
        renders of the same input per case before). ``fresh`` renders again regardless, for
        a property that compares renderings of one input (``template.deterministic``).
        """
        last = self._last
        if (not fresh and last is not None and last[0] is messages and last[1] is tools
                and last[2] == add_generation_prompt and last[3] == now):
            if isinstance(last[4], RenderError):
                raise last[4]
            return last[4]
        try:
            out = self.renderer.render(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                       now=now)
        except RenderError as err:
            self._last = (messages, tools, add_generation_prompt, now, err)
            raise
        # Holding the objects keeps them alive, so an identical id never means another case.
        self._last = (messages, tools, add_generation_prompt, now, out)
        return out

    def render_or_skip(self, messages: list, *, tools: list | None = None, add_generation_prompt: bool = False,
                       now: _dt.datetime | None = None, fresh: bool = False) -> str:
        """Render, or reject the input when the template refuses it.

        Properties other than ``template.renders`` use this: a crash is charged once, to
        ``template.renders``, and a deliberate ``raise_exception`` is a constraint, not a defect.
        While the template hangs on every render (`Renderer.hangs`) inputs are skipped
        without rendering: ``template.renders`` alone keeps rendering and reports it.
        """
        if self.renderer.hangs:
            raise Skip("the template timed out on the last renders")
        try:
            return self.render(messages, tools=tools, add_generation_prompt=add_generation_prompt, now=now,
                               fresh=fresh)
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
    def no_turn_markers(self) -> str:
        """Why `turn_markers` is empty, in words a user can check."""
        return _markers.why_no_turn_markers(self.target.source, self.markers, self.structure.samples,
                                            self.structure.failures)

    def unbalanced_turn(self, text: str) -> tuple[str, str] | None:
        """The first turn-marker imbalance in ``text`` (a turn opened and not closed, or
        closed and not opened) as (key, description); None when every turn is closed."""
        return _markers.unbalanced(text, self.turn_markers)

    def time_limit(self):
        """A context manager that bounds untrusted template code a property runs itself
        (transformers' own ``apply_chat_template``, say) by the render time limit; running
        out of it raises `RenderError`."""
        from .template.render import limited

        return limited(self.renderer.time_limit)

    @cached_property
    def structure(self) -> Structure:
        """Turn structure learned from probe renderings (add_generation_prompt=False), with a
        tools list where the template renders nothing without one (`accepts`)."""
        tools = PROBE_TOOLS if self.accepts.schemas_required else None
        return learn_structure(lambda msgs: self.render(msgs, tools=tools))

    @cached_property
    def accepts(self) -> Accepts:
        """The conversations the template renders, learned from probe renderings on first use
        (`chainfuzz.template.constraints`); their renders count against the command's budget."""
        return learn_accepts(lambda msgs, tools=None: self.render(msgs, tools=tools))

    def _constraints(self, overrides: dict) -> dict:
        """The learned constraints narrowed by ``overrides``: a boolean holds only if both
        allow it, option lists keep the options in both; other keywords (``txt``, ``end``,
        ``markers``, ``min_messages``...) are the caller's."""
        kw = {"markers": self.markers, **self.accepts.strategy_kwargs()}
        for key, value in overrides.items():
            learned = kw.get(key)
            if isinstance(value, bool) and isinstance(learned, bool):
                kw[key] = learned and value
            elif key in ("system_placements", "irregularities"):
                kw[key] = tuple(v for v in value if v in learned) or tuple(value[:1])
            elif key == "end" and value is None:
                continue  # the learned end stays (a template may refuse to end on an assistant)
            else:
                kw[key] = value
        if "tools" in overrides and "tool_schemas" not in overrides:
            kw["tool_schemas"] = kw["tool_schemas"] and overrides["tools"]  # as conversations() has it
        return kw

    def conversations(self, **overrides):
        """`chainfuzz.strategies.conversations` drawing only what the template accepts
        (`accepts`), with the target's markers in the text; ``overrides`` narrow it further.
        Properties other than ``template.renders`` draw from it, so they check what they draw."""
        return _strategies.conversations(**self._constraints(overrides))

    def edge_conversations(self, **overrides) -> list[dict]:
        """`chainfuzz.strategies.edge_conversations` the template accepts, narrowed like
        `conversations`: the boundary cases to check first."""
        return _strategies.edge_conversations(**self._constraints(overrides))

    @cached_property
    def minijinja(self):
        from .template.minijinja import MiniJinjaRenderer

        return MiniJinjaRenderer(self.target, now=self.renderer.now, max_output=self.renderer.max_output)

    @cached_property
    def loaded(self):
        """The target's tokenizer implementations (`chainfuzz.tokenization.Loaded`)."""
        from . import tokenization

        if self.target.tokenizer is None:
            raise Skip("the target has no tokenizer")
        return tokenization.load(self.target.tokenizer)

    @cached_property
    def kinds(self) -> set[str]:
        """The kinds of property that can run: the target's kinds (`Target.kinds`) that are
        usable here (`chainfuzz.kinds.Kind.usable`), and the kinds run on request (parsers) when
        the run names their implementations."""
        return {k for k in recognised(self.target, on_request=True) if kind(k).usable(self)}

    def kind_rows(self) -> list:
        """The `chainfuzz.kinds.Kind` of each kind in `kinds`, in table order."""
        return [kind(name) for name in kind_names() if name in self.kinds]

    def open(self, kinds: set[str] | None = None) -> "Context":
        """Open ``kinds`` (default: every kind in `kinds`): the template compiles, the
        tokenizer loads, the engines start (`chainfuzz.kinds.Kind.open`); `TargetError` or
        `UsageError` otherwise. Nothing of a kind not asked for is opened."""
        try:
            for row in self.kind_rows():
                if kinds is None or row.name in kinds:
                    row.open(self)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def unavailable(self) -> dict[str, str]:
        """Implementations that cannot run on this target, and why (every kind's)."""
        return {i: why for k in self.target.kinds | self.kinds for i, why in kind(k).not_run(self).items()}

    @property
    def tokenizers(self) -> list:
        """Every implementation that reads the target's tokenizer, reference first."""
        return self.loaded.impls

    @property
    def tokenizer(self):
        """The reference implementation."""
        return self.tokenizers[0]

    @cached_property
    def vocab(self):
        """The vocabulary generators draw from (`chainfuzz.tokenization.vocab.Vocab`)."""
        from .tokenization.vocab import build

        return build(self.tokenizers, self.markers if self.target.source is not None else ())

    @cached_property
    def chains(self) -> list:
        """The template+tokenizer chains (one per implementation that can encode a rendered
        prompt's markers), or mistral-common's own request encoder."""
        from .chain import mistral_chain, template_chain

        if self.target.source is not None:
            return [template_chain(self, tok) for tok in self.tokenizers if tok.parses_special]
        return [mistral_chain(tok) for tok in self.tokenizers if tok.impl == "mistral-common"]

    @cached_property
    def engines(self) -> list:
        """The inference engines of the run (``engine_specs``) on the target's model; one that
        cannot start here (not installed, no server at the URL) is a `UsageError`."""
        from .engines import EngineError, open_engine

        if self.target.model is None:
            raise Skip("the target has no model")
        engines = []
        try:
            for spec in self.engine_specs:
                engines.append(open_engine(spec, Path(self.target.model)))
        except BaseException as exc:
            for engine in engines:  # no worker or server process outlives a failed start
                engine.close()
            if isinstance(exc, (ImportError, EngineError)):  # not installed, or died starting
                raise UsageError(f"engine {spec!r} cannot run here: {exc}") from None
            raise
        return engines

    @cached_property
    def parser_family(self):
        """The template's model family in the parser table (`chainfuzz.parsers.families`), or None."""
        from .parsers.families import family_of

        return family_of(self.target.path) if self.target.source is not None else None

    @cached_property
    def parser_setup(self):
        """What opening a parser needs from the target (`chainfuzz.parsers.ParserSetup`): the
        model folder's tokenizer, else the family's (built once from the corpus vocabulary)."""
        from .parsers import ParserSetup
        from .parsers.families import tokenizer_dir

        folder = None
        if self.target.tokenizer is not None and self.target.tokenizer.format == "hf":
            folder = Path(self.target.tokenizer.path)
        elif self.parser_family is not None:
            folder = tokenizer_dir(self.parser_family)
        return ParserSetup(tokenizer_dir=folder, template_source=self.target.source)

    @cached_property
    def parsers(self) -> list:
        """The output parsers of the run (``parser_specs``, ``auto`` expanded to the family's).
        A parser named outright that cannot run here is a `UsageError`; one ``auto`` picked
        is left out and listed in `parsers_unavailable`."""
        from .parsers import ParserCrash, open_parser
        from .parsers.families import auto_specs

        if not self.parser_specs:
            raise Skip("no --parser named")
        self.parsers_unavailable = {}
        opened: list = []
        try:
            for spec in self.parser_specs:
                auto = spec == "auto"
                for one in auto_specs(self.target.path) if auto else (spec,):
                    try:
                        opened.append(open_parser(one, self.parser_setup))
                    except (ImportError, ParserCrash, UsageError) as exc:
                        if not auto:
                            raise UsageError(f"parser {one!r} cannot run here: {exc}") from None
                        self.parsers_unavailable[one] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except BaseException:
            for parser in opened:
                parser.close()
            raise
        if not opened:
            raise UsageError(f"no parser of {', '.join(self.parser_specs)} runs here: "
                             + "; ".join(f"{k}: {v}" for k, v in self.parsers_unavailable.items()))
        return opened

    parsers_unavailable: dict[str, str] = {}  # spec -> why, for ``auto``'s left out (set by `parsers`)

    @cached_property
    def parser_tokenizer(self):
        """The tokenizer the parsers' text is tokenised with (`chainfuzz.tokenization.hf.HFTokenizer`)."""
        from .parsers.families import load_tokenizer

        if self.parser_setup.tokenizer_dir is None:
            raise UsageError(f"{self.target.name}: parsers need the model's tokenizer, and this template is "
                             "neither in a model folder nor of a family the parser table knows")
        return load_tokenizer(self.parser_setup.tokenizer_dir)

    def generation(self, message: dict, tools: list | None = None, *, question: str = "What now?"):
        """``message`` as the model would have generated it (`chainfuzz.parsers.base.Generation`):
        a user ``question`` rendered with the generation prompt is the prompt; the same
        conversation with ``message`` as the assistant's reply, rendered, holds the prompt and
        then the reply, whose text before the turn's closers (the end-of-turn token a server
        stops on and strips, an EOS after it) and the whitespace between them is what the
        model generated. Skips an input the template refuses, or whose reply the template
        writes into a history differently from a generation (the rendering does not start with
        the prompt: DeepSeek-R1 drops the reasoning of past turns)."""
        from .parsers.base import Generation, Request

        user = {"role": "user", "content": question}
        prompt = self.render_or_skip([user], tools=tools, add_generation_prompt=True)
        full = self.render_or_skip([user, message], tools=tools)
        if not full.startswith(prompt):
            raise Skip("the template writes a past reply differently from a generated one")
        text, before = full[len(prompt):], None
        while text != before:  # the turn's closers and what the template writes after them
            before, text = text, text.rstrip()
            text = next((text[:-len(c)] for c in self.turn_closers if text.endswith(c)), text)
        ids = self.parser_tokenizer.encode(prompt)
        return Generation(prompt, text, Request(tools=tools, prompt=prompt, prompt_ids=ids))

    @cached_property
    def turn_closers(self) -> tuple[str, ...]:
        """The strings that end an assistant turn: the template's turn closers, its EOS, and
        the EOS its family's templates write themselves (`chainfuzz.parsers.families.Family.eos`)."""
        closers = {c for t in self.turn_markers for c in (t.closer, *t.alternatives) if c}
        if eos := self.target.special_tokens.get("eos_token"):
            closers.add(eos)
        if self.parser_family is not None and self.parser_family.eos:
            closers.add(self.parser_family.eos)
        return tuple(sorted(closers, key=len, reverse=True))

    def stream_chunks(self, text: str, grouping: dict) -> list:
        """``text`` as a server streams it (`chainfuzz.parsers.Chunk`s): tokenised by the
        parsers' tokenizer, its ids grouped into deltas as ``grouping`` says
        (`strategies.cuts`), each delta's text decoded by ``tokenizers``' ``DecodeStream``
        (vLLM's detokenizer, which holds back an incomplete character). Skips a text the
        tokenizer does not give back unchanged (a tokenizer property's finding, not a parser's)."""
        from .parsers.base import Chunk
        from .tokenization.stream import decode_stream

        tok = self.parser_tokenizer
        ids = tok.encode(text)
        if tok.decode(ids) != text:
            raise Skip("the tokenizer does not give the text back unchanged")
        groups = _strategies.group_tokens(ids, grouping)
        deltas = decode_stream(tok.backend, groups)
        if "".join(deltas) != text:
            raise Skip("the streaming detokenizer does not give the text back unchanged")
        return [Chunk(d, tuple(g)) for d, g in zip(deltas, groups)]

    def close(self) -> None:
        """Stop the engines' worker processes, if any were started; hand the parsers back
        (`chainfuzz.parsers.release`: the next context on the same target reuses them)."""
        for engine in self.__dict__.pop("engines", []):
            engine.close()
        if parsers := self.__dict__.pop("parsers", []):
            from .parsers import release

            for parser in parsers:
                release(parser)  # kept idle for the next context on the same target (replay)

    @cached_property
    def prompt_chain(self):
        """The chain whose ids engines are given: the template with transformers' tokenizer."""
        return next(c for c in self.chains if c.tokenizer.impl == "hf")
