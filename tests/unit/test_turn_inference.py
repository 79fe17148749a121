"""Turn markers of the shapes real templates use beyond one named pair: role tokens closed by
a shared closer (Phi-3), role tokens the next one ends (DeepSeek's user turn), a pair with the
bar on either side (gemma-4), a closer chosen in an if/elif chain (gpt-oss), a last turn left
open on purpose; and why none are found where a template gives turns_closed nothing to check.

Each planted defect in ``templates/turn_shapes/`` must fail ``template.turns_closed`` and its
clean twin pass. (They sit in a folder of their own: ``properties/`` lists every
``templates/*_defect.jinja`` as one of its planted defects.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chainfuzz.context import Context
from chainfuzz.targets import Target
from chainfuzz.template.markers import alternative_closers, unbalanced, vocabulary, why_no_turn_markers
from verdicts import check_once

SHAPES = Path(__file__).parents[1] / "templates" / "turn_shapes"

USER = {"role": "user", "content": "hi there"}
ASSISTANT = {"role": "assistant", "content": "hello"}
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {}}}]}


def context(source: str) -> Context:
    return Context(Target(source, "inline", "t"))


def turns(source: str):
    return context(source).turn_markers


def why(source: str) -> str:
    ctx = context(source)
    return why_no_turn_markers(source, ctx.markers, ctx.structure.samples, ctx.structure.failures)


def shape(name: str) -> str:
    return (SHAPES / f"{name}.jinja").read_text(encoding="utf-8")


# --- the rules, each with a twin where it must not fire -------------------------------------

PHI = ("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
       "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def test_role_tokens_share_a_closer():
    [t] = turns(PHI)
    assert (t.opener, t.closer, set(t.openers), t.open_ended) == \
        ("<|assistant|>", "<|end|>", {"<|user|>", "<|system|>"}, ())
    assert unbalanced("<|user|>\na<|end|>\n<|assistant|>\nb<|end|>\n", [t]) is None
    assert unbalanced("<|user|>\na<|end|>\n<|assistant|>\nb", [t])[0] == "never_closed:<|assistant|>"
    assert unbalanced("<|user|>\na<|assistant|>\nb<|end|>", [t])[0] == "reopened:<|user|>"


def test_a_section_tag_before_every_message_is_not_a_role_token():
    """<think></think> before each message is a section: with no role token, no turn markers."""
    source = "{% for m in messages %}{{ m.role }}: <think></think>{{ m.content }}\n\n{% endfor %}"
    assert turns(source) == []
    assert why(source).startswith("no marker wraps every message")


DEEPSEEK = ("{% for m in messages %}{% if m.role == 'assistant' %}<|Assistant|>{{ m.content }}<|eos|>"
            "{% elif m.role == 'system' %}{{ m.content }}{% else %}<|User|>{{ m.content }}{% endif %}"
            "{% endfor %}{% if add_generation_prompt %}<|Assistant|>{% endif %}")


def test_the_next_role_token_ends_an_open_ended_turn():
    [t] = turns(DEEPSEEK)
    assert (t.opener, t.closer, t.openers, t.open_ended) == \
        ("<|Assistant|>", "<|eos|>", ("<|User|>",), ("<|User|>",))
    assert unbalanced("sys<|User|>a<|Assistant|>b<|eos|><|User|>c", [t]) is None
    assert unbalanced("<|User|>a<|Assistant|>b<|User|>c", [t])[0] == "reopened:<|Assistant|>"
    # A closer with no turn open proves nothing: a tool result's own opener is never probed.
    assert unbalanced("<|User|>a<|Assistant|>b<|eos|><tool>r</tool><|eos|>", [t]) is None


def test_role_tokens_that_nothing_closes_give_no_markers_and_say_why():
    glm = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}"
    assert turns(glm) == []
    assert why(glm).startswith("turns have no closing marker")


def test_a_bar_on_either_side_pairs_by_name():
    source = "{% for m in messages %}<|turn>{{ m.role }}\n{{ m.content }}<turn|>\n{% endfor %}"
    assert "<|turn>" in vocabulary(source) and "<turn|>" in vocabulary(source)
    [t] = turns(source)
    assert (t.opener, t.closer) == ("<|turn>", "<turn|>")


def test_a_bar_pair_around_a_section_is_not_a_turn():
    source = ("{% for m in messages %}<|im_start|>{{ m.role }}\n<|tool><tool|>{{ m.content }}<|im_end|>\n"
              "{% endfor %}")
    assert [(t.opener, t.closer) for t in turns(source)] == [("<|im_start|>", "<|im_end|>")]


GPT_OSS = ("{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}"
           "{% if m.tool_calls %}<|call|>{% elif loop.last and not add_generation_prompt %}<|return|>"
           "{% else %}<|end|>{% endif %}{% endfor %}")


def test_an_elif_chain_not_on_the_role_gives_alternative_closers():
    [t] = turns(GPT_OSS)
    assert (t.opener, t.closer, t.alternatives) == ("<|start|>", "<|end|>", ("<|call|>", "<|return|>"))


def test_an_elif_chain_on_the_content_type_gives_none():
    source = ("{% if c is string %}<|text|>{{ c }}<|end|>{% elif c is mapping %}<|image|>"
              "{% else %}<|audio|>{% endif %}")
    assert alternative_closers(source, "<|end|>", vocabulary(source)) == ()


def test_a_last_turn_left_open_in_every_probe_is_on_purpose():
    """Closed when another message follows, open at the end in every probe: a message to be
    continued. Only a turn left open before the next one is then a defect."""
    source = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
              "{% if not loop.last %}<|im_end|>\n{% endif %}{% endfor %}")
    [t] = turns(source)
    assert t.open_at_end == ("<|im_start|>",)
    assert unbalanced("<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb", [t]) is None
    assert unbalanced("<|im_start|>user\na<|im_start|>assistant\nb", [t])[0] == "reopened:<|im_start|>"


def test_a_template_refusing_every_probe_says_so():
    source = "{{ raise_exception('needs a tools list') }}"
    assert turns(source) == []
    assert why(source) == "the template refused every probe conversation: needs a tools list"


# --- planted defects and their clean twins ---------------------------------------------------

@pytest.mark.parametrize("name,key", [
    ("role", "never_closed:<|assistant|>"),
    ("open_ended", "never_closed:<|Assistant|>"),
    ("bar", "never_closed:<|turn>"),
])
def test_planted_defect_fails_and_its_twin_passes(name, key):
    case = {"messages": [USER, CALL], "tools": None}
    failure = check_once(Context(Target(shape(f"turns_closed_{name}_defect"), "inline", name)),
                         "template.turns_closed", case)
    assert failure is not None and failure.key == key
    clean = Context(Target(shape(f"turns_closed_{name}_clean"), "inline", name))
    assert check_once(clean, "template.turns_closed", case) is None
    assert check_once(clean, "template.turns_closed", {"messages": [USER, ASSISTANT], "tools": None}) is None
