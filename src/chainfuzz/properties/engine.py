"""Engine properties: what an inference engine must keep when it decodes greedily.

Prompts are real chat prompts: generated conversations rendered by the target's template and
encoded by its tokenizer (`Context.prompt_chain`). Each check generates a few new tokens on
every engine of the run (`--engine`); an engine that lacks what a property needs (a prefix
cache, streaming, a chat path of its own) is left out of that property, not passed.
"""

from __future__ import annotations

from hypothesis import strategies as st

import chainfuzz
from chainfuzz import EngineCrash, EngineError, Failure, Unsupported, assume, strategies

RUNS = 3  # greedy runs of one prompt in engine.greedy_deterministic
NEW_TOKENS = 8
TEXT_TOKENS = 24  # stream_matches_full: enough text for stop strings to land inside
MAX_PROMPT = 512  # ids: longer prompts only cost time


def _conversations(ctx):
    # Engines are not what a template's crashes are charged to: contents are plain strings,
    # of two parts at most: every token costs a forward pass, and texts of four parts with
    # edge pieces made a batch finding stall in shrinking (6 steps in 2 s on the tiny model).
    # No developer messages: vLLM's chat path hands a lone one to the template as a system
    # message while transformers passes the role as given, a role-mapping difference found
    # here (engine.chat_matches_completion) that belongs to the input tiers of the template
    # layer, not to the engines' batching, caching and sampling.
    convs = strategies.conversations(ctx.markers, end="user", tools=False, reasoning=False, max_exchanges=2,
                                     txt=strategies.text(ctx.markers, max_parts=2), developer=False)
    return convs.map(_string_contents)


def _string_contents(case: dict) -> dict:
    def text(content) -> str:
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content)
        return content or ""

    return {**case, "messages": [{**m, "content": text(m.get("content"))} for m in case["messages"]]}


def _prompt_ids(ctx, case: dict) -> list[int]:
    ids = ctx.prompt_chain.encode(case["messages"], case.get("tools"))
    assume(0 < len(ids) <= MAX_PROMPT, "prompt too long")
    return ids


def _each(ctx, check_one) -> None:
    """Run ``check_one(engine)`` on every engine of the run (`chainfuzz.each`); an engine crash,
    or a refusal of a prompt the reference takes, is a finding of its own."""

    def guarded(engine) -> None:
        try:
            check_one(engine)
        except EngineCrash as exc:
            raise Failure(f"{engine.name} crashed: {exc}", key=f"{engine.name}:crashed") from None
        except EngineError as exc:
            raise Failure(f"{engine.name} refused the request: {exc}", key=f"{engine.name}:refuses") from None

    chainfuzz.each(ctx.engines, guarded)


def _first_difference(a: list, b: list) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _compare(engine, what: str, got, expected, detail: str = "") -> None:
    """Fail if ``got`` (a Completion) differs from ``expected``: tokens exactly, logprobs
    within the engine's stated tolerance (a warning: the tokens still agree). ``what`` names
    the condition in the key; ``detail`` adds this input's particulars to the message."""
    if got.tokens != expected.tokens:
        first = _first_difference(got.tokens, expected.tokens)
        raise Failure(f"{engine.name}: {what}{detail}: greedy tokens differ from new token {first} on",
                      key=f"{engine.name}:{what} changes tokens", observed=got.tokens, expected=expected.tokens)
    if got.logprobs and expected.logprobs:
        drift = max(abs(x - y) for x, y in zip(got.logprobs, expected.logprobs))
        if drift > engine.tolerance:
            raise Failure(f"{engine.name}: {what}{detail}: logprobs move by {drift:.3g}, over the engine's "
                          f"tolerance {engine.tolerance:g}", key=f"{engine.name}:{what} changes logprobs",
                          observed=got.logprobs, expected=expected.logprobs, severity="warning")


# --- engine.greedy_deterministic -------------------------------------------------------------

@chainfuzz.property("engine.greedy_deterministic", inputs=_conversations, applies_to="engine")
def greedy_deterministic(ctx, case):
    """The same prompt at temperature 0 gives the same tokens over N runs; a failure reports
    the distinct completions out of N."""
    ids = _prompt_ids(ctx, case)

    def check(engine):
        outs = [engine.generate([ids], NEW_TOKENS)[0].tokens for _ in range(RUNS)]
        distinct = len({tuple(o) for o in outs})
        if distinct > 1:
            raise Failure(f"{engine.name}: {distinct} distinct completions out of {RUNS} greedy runs "
                          f"of the same prompt", key=f"{engine.name}:nondeterministic",
                          observed=outs, expected=f"{RUNS} identical completions")

    _each(ctx, check)


# --- engine.batch_invariant ------------------------------------------------------------------

def _batches(ctx):
    conversation = _conversations(ctx)
    return st.fixed_dictionaries({"prompt": conversation, "others": st.lists(conversation, min_size=1, max_size=3),
                                  "position": st.integers(0, 3)})


@chainfuzz.property("engine.batch_invariant", inputs=_batches, applies_to="engine")
def batch_invariant(ctx, case):
    """A prompt's greedy tokens do not change with what else is in the batch (or runs
    concurrently, on a server) or where it sits; its logprobs move by no more than the
    engine's stated tolerance (zero where the engine promises bitwise results)."""
    ids = _prompt_ids(ctx, case["prompt"])
    others = [_prompt_ids(ctx, c) for c in case["others"]]
    position = min(case["position"], len(others))
    batch = others[:position] + [ids] + others[position:]

    def check(engine):
        try:  # a cached prefix must not be what makes the two runs differ
            engine.clear_prefix_cache()
        except Unsupported:
            pass
        alone = engine.generate([ids], NEW_TOKENS)[0]
        together = engine.generate(batch, NEW_TOKENS)[position]
        _compare(engine, "batch", together, alone, f" (a batch of {len(batch)}, at position {position})")

    _each(ctx, check)


# --- engine.prefix_cache_invariant -----------------------------------------------------------

def _siblings(ctx):
    """A conversation and a sibling that shares everything but its last message's text, so
    the sibling's prompt warms the cache with a long common prefix."""
    return st.fixed_dictionaries({"prompt": _conversations(ctx),
                                  "sibling_text": strategies.text(ctx.markers)})


@chainfuzz.property("engine.prefix_cache_invariant", inputs=_siblings, applies_to="engine")
def prefix_cache_invariant(ctx, case):
    """A prompt gives the same greedy tokens (and logprobs within tolerance) with the prefix
    cache cold, warm from the same prompt, warm from a sibling sharing its prefix, and off."""
    conv = case["prompt"]
    sibling = {**conv, "messages": [*conv["messages"][:-1], {**conv["messages"][-1],
                                                             "content": case["sibling_text"]}]}
    ids, sibling_ids = _prompt_ids(ctx, conv), _prompt_ids(ctx, sibling)
    assume(ids != sibling_ids, "the sibling is the same prompt")

    def check(engine):
        engine.clear_prefix_cache()
        cold = engine.generate([ids], NEW_TOKENS)[0]
        _compare(engine, "warm cache", engine.generate([ids], NEW_TOKENS)[0], cold)
        engine.generate([sibling_ids], NEW_TOKENS)
        _compare(engine, "cache warmed by a sibling prompt", engine.generate([ids], NEW_TOKENS)[0], cold)
        _compare(engine, "cache off", engine.generate_uncached(ids, NEW_TOKENS), cold)

    _each(ctx, check)


# --- engine.chat_matches_completion ----------------------------------------------------------

@chainfuzz.property("engine.chat_matches_completion", inputs=_conversations, applies_to="engine")
def chat_matches_completion(ctx, case):
    """The engine's own chat path (its template, its tokenizer) builds the same prompt ids as
    the reference, which is what the completion endpoint is sent: transformers' rendering
    encoded by the tokenizer with special tokens parsed and none added (the convention of
    ``apply_chat_template(tokenize=True)``: the template writes BOS itself). Where the engine
    does not say its prompt ids, the prompt's length and the greedy text must match those of
    the reference prompt."""
    chain = ctx.prompt_chain
    tok = chain.tokenizer
    ids = tok.encode(chain.render(case["messages"], case.get("tools")), add_special=False, parse_special=True)
    assume(0 < len(ids) <= MAX_PROMPT, "prompt too long")

    def check(engine):
        chat = engine.chat(case["messages"], case.get("tools"), NEW_TOKENS)
        if chat.prompt_ids is not None:
            if chat.prompt_ids != ids:
                first = _first_difference(chat.prompt_ids, ids)
                raise Failure(
                    f"{engine.name}: the chat path's prompt differs from the reference from id {first} on: "
                    f"{ascii(tok.decode(chat.prompt_ids[first:first + 8]))} instead of "
                    f"{ascii(tok.decode(ids[first:first + 8]))}",
                    key=f"{engine.name}:chat prompt differs{_how(chat.prompt_ids, ids, tok)}",
                    observed=chat.prompt_ids, expected=ids)
            return
        if chat.prompt_tokens != len(ids):
            raise Failure(f"{engine.name}: the chat path's prompt has {chat.prompt_tokens} tokens, the "
                          f"reference prompt {len(ids)}", key=f"{engine.name}:chat prompt length differs",
                          observed=chat.prompt_tokens, expected=len(ids))
        text = engine.complete(ids, NEW_TOKENS, [])
        if chat.text != text:
            raise Failure(f"{engine.name}: the chat reply differs from the completion of the reference prompt",
                          key=f"{engine.name}:chat reply differs", observed=chat.text, expected=text)

    _each(ctx, check)


def _how(got: list[int], want: list[int], tok) -> str:
    """A stable name for the common ways a chat prompt differs: the same text split into
    other tokens (the engine's tokenizer disagrees, not its template), or BOS."""
    if tok.decode(got) == tok.decode(want):
        return ": same text, other tokens"
    bos = tok.bos_id
    if bos is not None and got[:2] == [bos, bos] and want[:2] != [bos, bos]:
        return ": double BOS"
    if bos is not None and (got[:1] == [bos]) != (want[:1] == [bos]):
        return ": BOS " + ("added" if got[:1] == [bos] else "missing")
    return ""


# --- engine.stream_matches_full --------------------------------------------------------------

def _stops(ctx):
    """A conversation and where to cut a stop string out of its greedy completion."""
    return st.fixed_dictionaries({"prompt": _conversations(ctx), "stop_at": st.integers(0, 200),
                                  "stop_len": st.integers(0, 4)})


@chainfuzz.property("engine.stream_matches_full", inputs=_stops, applies_to="engine")
def stream_matches_full(ctx, case):
    """The streamed deltas of a greedy request join to exactly the non-streamed text, with
    and without a stop string cut from the completion itself (so it spans tokens and
    multi-byte characters wherever the completion has them); stop strings cut the text
    before their first occurrence in both."""
    ids = _prompt_ids(ctx, case["prompt"])

    def check(engine):
        full = engine.complete(ids, TEXT_TOKENS, [])
        stop = [full[case["stop_at"] % max(len(full), 1):][:case["stop_len"]]] if case["stop_len"] else []
        stop = [s for s in stop if s]
        expected = full[:full.find(stop[0])] if stop else full
        if stop:
            got = engine.complete(ids, TEXT_TOKENS, stop)
            if got != expected:
                raise Failure(f"{engine.name}: with stop {stop[0]!r} the full text is not the text before it",
                              key=f"{engine.name}:stop string misapplied", observed=got, expected=expected)
        deltas = engine.stream(ids, TEXT_TOKENS, stop)
        joined = "".join(deltas)
        if joined != expected:
            raise Failure(f"{engine.name}: streamed deltas join to a different text than the full response"
                          f"{' with stop ' + repr(stop[0]) if stop else ''}",
                          key=f"{engine.name}:stream differs{_stream_how(joined, expected, stop)}",
                          observed=deltas, expected=expected)

    _each(ctx, check)


def _stream_how(joined: str, full: str, stop: list[str]) -> str:
    if joined.count("\ufffd") > full.count("\ufffd"):
        return ": U+FFFD"
    if stop and stop[0] in joined:
        return ": stop string sent"
    if full.startswith(joined):
        return ": text missing"
    return ""
