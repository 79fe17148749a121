"""Engine properties: what an inference engine must keep when it decodes greedily.

Prompts are real chat prompts: generated conversations rendered by the target's template and
encoded by its tokenizer (`Context.prompt_chain`). Each check generates a few new tokens.
"""

from __future__ import annotations

from hypothesis import strategies as st

import chainfuzz
from chainfuzz import strategies
from chainfuzz.errors import Failure, assume

RUNS = 3  # greedy runs of one prompt in engine.greedy_deterministic
NEW_TOKENS = 8
MAX_PROMPT = 512  # ids: longer prompts only cost time


def _conversations(ctx):
    # Engines are not what a template's crashes are charged to: contents are plain strings.
    convs = strategies.conversations(ctx.markers, end="user", tools=False, reasoning=False, max_exchanges=2)
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


@chainfuzz.property("engine.greedy_deterministic", inputs=_conversations, applies_to="engine")
def greedy_deterministic(ctx, case):
    """The same prompt at temperature 0 gives the same tokens over N runs; a failure reports
    the distinct completions out of N."""
    ids = _prompt_ids(ctx, case)
    for engine in ctx.engines:
        outs = [engine.generate([ids], NEW_TOKENS)[0] for _ in range(RUNS)]
        distinct = len({tuple(o) for o in outs})
        if distinct > 1:
            raise Failure(f"{engine.name}: {distinct} distinct completions out of {RUNS} greedy runs "
                          f"of the same prompt", key=f"{engine.name}:nondeterministic",
                          observed=outs, expected=f"{RUNS} identical completions")


def _batches(ctx):
    conversation = _conversations(ctx)
    return st.fixed_dictionaries({"prompt": conversation, "others": st.lists(conversation, min_size=1, max_size=3),
                                  "position": st.integers(0, 3)})


@chainfuzz.property("engine.batch_invariant", inputs=_batches, applies_to="engine")
def batch_invariant(ctx, case):
    """A prompt's greedy tokens do not change with what else is in the batch or where in the
    batch it sits (tokens compared exactly; logits are not compared yet)."""
    ids = _prompt_ids(ctx, case["prompt"])
    others = [_prompt_ids(ctx, c) for c in case["others"]]
    position = min(case["position"], len(others))
    batch = others[:position] + [ids] + others[position:]
    for engine in ctx.engines:
        alone = engine.generate([ids], NEW_TOKENS)[0]
        together = engine.generate(batch, NEW_TOKENS)[position]
        if together != alone:
            first = next(i for i, (a, b) in enumerate(zip(alone, together)) if a != b)
            raise Failure(f"{engine.name}: in a batch of {len(batch)} at position {position} the prompt's "
                          f"greedy tokens differ from its tokens alone from new token {first} on",
                          key=f"{engine.name}:batch changes tokens", observed=together, expected=alone)
