"""Chain properties: the template and the tokenizer together, as a server runs them."""

from __future__ import annotations

import chainfuzz
from chainfuzz import Failure, Skip, assume, strategies
from chainfuzz.messages import all_strings

from .tokenizer import call


def _injections(ctx):
    # Texts are drawn with the target's own special-token strings and their fragments.
    return strategies.conversations(ctx.vocab.specials, end="user")


def _sanitised(value, specials: list[str]):
    """``value`` with every special-token string removed from every text, until none is left."""
    if isinstance(value, str):
        changed = True
        while changed:
            before = value
            for s in specials:
                value = value.replace(s, "")
            changed = value != before
        return value
    if isinstance(value, list):
        return [_sanitised(v, specials) for v in value]
    if isinstance(value, dict):
        return {k: _sanitised(v, specials) for k, v in value.items()}
    return value


def _carrier(case: dict, specials: list[str]) -> str:
    """Which field carries the forging text: a message role, "tool call", "name" or "tools"."""
    for m in case["messages"]:
        for key, value in m.items():
            if key != "role" and any(s in t for t in all_strings(value) for s in specials):
                return {"name": "name", "tool_calls": "tool call"}.get(key, m.get("role", "?"))
    return "tools"


@chainfuzz.property("chain.no_role_injection", inputs=_injections, applies_to="chain")
def no_role_injection(ctx, case):
    """After render + encode, the prompt holds as many role-boundary (control) token ids as the
    same conversation with the special-token text removed from every field: user, tool and name
    text spelling control tokens must not forge a turn. Reports which encoding setting would
    prevent it."""
    specials = sorted({*ctx.vocab.specials}, key=len, reverse=True)
    assume(any(s in t for t in all_strings(case) for s in specials), "no special-token text in the input")
    clean = _sanitised(case, specials)
    forged = []  # (chain, observed, expected): every chain is checked, none masks another
    for chain in ctx.chains:
        try:
            expected = _count(chain, clean)
        except Skip:
            continue  # the sanitised twin is refused: nothing to compare with
        observed = _count(chain, case)
        if observed != expected:
            forged.append((chain, observed, expected))
    if not forged:
        return
    field = _carrier(case, specials)
    chain, observed, expected = forged[0]
    fixes = "; ".join(f"{c.name}: {_fixes(ctx, c, case, clean)}" for c, _, _ in forged)
    # The chains are part of the key: an input that fools one chain and one that fools all
    # are different findings, so neither hides the other.
    names = ", ".join(c.name for c, _, _ in forged)
    raise Failure(
        f"{names}: text in a {field} field becomes {observed} control tokens where the "
        f"conversation has {expected}. {fixes}",
        key=f"forged by {field} in {names}", observed={c.name: o for c, o, _ in forged},
        expected={c.name: e for c, _, e in forged},
        rendered=chain.render(case["messages"], case.get("tools")) if chain.render else None,
    )


def _count(chain, case: dict) -> int:
    ids = call(chain.tokenizer, "encode", chain.encode, case["messages"], case.get("tools"))
    control = chain.control_ids
    return sum(i in control for i in ids)


def _fixes(ctx, chain, case: dict, clean: dict) -> str:
    """Which encoding settings would have kept the count right, tried on this input."""
    tok = chain.tokenizer
    if chain.render is None:
        return "the encoder itself parses the text"
    notes = []
    prompt, clean_prompt = (chain.render(c["messages"], c.get("tools")) for c in (case, clean))
    control = chain.control_ids

    def count(ids):
        return sum(i in control for i in ids)

    split = count(call(tok, "encode", tok.encode, prompt, add_special=True, parse_special=False))
    template_own = count(call(tok, "encode", tok.encode, clean_prompt, add_special=True, parse_special=True))
    if tok.impl == "hf":
        notes.append("split_special_tokens=True " + (
            "prevents it" if split == template_own else
            f"also splits the template's own control tokens ({split} left of {template_own})"))
        notes.append(_sanitize_note(ctx, tok, case, clean, count))
    else:
        notes.append("parse_special=False " + (
            "prevents it" if split == template_own else
            f"also splits the template's own control tokens ({split} left of {template_own})"))
    return "; ".join(n for n in notes if n)


def _sanitize_note(ctx, tok, case: dict, clean: dict, count) -> str:
    """transformers' ``apply_chat_template(..., sanitize_control_tokens=True)``, if it has it."""
    def ids(c):
        with ctx.time_limit():
            return tok.tok.apply_chat_template(
                c["messages"], tools=c.get("tools"), chat_template=ctx.target.source,
                add_generation_prompt=True, tokenize=True, return_dict=False,
                sanitize_control_tokens=True, **ctx.target.special_tokens)

    try:
        prevents = count(ids(case)) == count(ids(clean))
    except Exception:  # noqa: BLE001 - an older transformers, or a template it cannot run
        return ""
    return "apply_chat_template(sanitize_control_tokens=True) " + ("prevents it" if prevents else "does not")


# --- chain.single_bos -----------------------------------------------------------------------


def _conversations(ctx):
    return strategies.conversations(ctx.markers, end="user")


# Called tokenizer.single_bos until it moved here: old case files name it so.
@chainfuzz.property("chain.single_bos", inputs=_conversations, applies_to="chain",
                    aliases=("tokenizer.single_bos",))
def single_bos(ctx, case):
    """Rendering a conversation and encoding it as servers do (the tokenizer's default
    ``add_special_tokens``) yields exactly one BOS, first, when the model uses one: never two,
    never zero."""

    def one(chain) -> None:
        if problem := _bos_problem(chain, case):
            key, what, observed, expected = problem
            raise Failure(f"{chain.name}: {what}", key=f"{chain.name}:{key}", observed=observed,
                          expected=expected)

    chainfuzz.each(ctx.chains, one, key=lambda names, kind: f"{kind} in {', '.join(names)}")


def _bos_problem(chain, case) -> tuple[str, str, int, int] | None:
    """(key, description, observed, expected) of what is wrong with BOS in ``chain``'s
    encoding of ``case``; None when nothing is."""
    tok = chain.tokenizer
    assume(tok.bos_id is not None, "the vocabulary has no BOS")
    bos_text = tok.bos_text
    assume(not bos_text or not any(bos_text in s for s in all_strings(case)),
           "the input spells the BOS token itself (chain.no_role_injection's concern)")
    ids = call(tok, "encode", chain.encode, case["messages"], case.get("tools"))
    count = ids.count(tok.bos_id)
    writes_bos = bool(bos_text) and chain.render is not None \
        and chain.render(case["messages"], case.get("tools")).startswith(bos_text)
    if count > 1:
        who = "the template writes BOS and the tokenizer adds another" if writes_bos and tok.adds_bos \
            else "BOS appears more than once"
        return "double BOS", f"{count} BOS tokens: {who}", count, 1
    if (tok.adds_bos or writes_bos) and count == 0:
        return "no BOS", "the model uses BOS but the encoded prompt has none", 0, 1
    if count == 1 and ids[0] != tok.bos_id:
        return "BOS not first", f"BOS is at position {ids.index(tok.bos_id)}, not first", ids.index(tok.bos_id), 0
    return None
