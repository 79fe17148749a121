"""Marker inference: what turns_closed and the input-charging rules know about a template,
found with no per-model configuration."""

from __future__ import annotations

import pytest

from chainfuzz.context import Context
from chainfuzz.template.markers import alternative_closers, pairs_by_name, unbalanced, vocabulary
from chainfuzz.targets import Target

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# Llama 3.1 style: a header pair, then <|eom_id|> instead of <|eot_id|> after a tool call.
LLAMA = ("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}"
         "{% if m.tool_calls %}<|python_tag|>{{ m.tool_calls | tojson }}<|eom_id|>"
         "{% else %}<|eot_id|>{% endif %}{% endfor %}")

# A role dispatch: the assistant branch ends with a section tag, which must not count as a closer.
MISTRAL = ("{% for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]"
           "{% elif m.role == 'assistant' %}{{ m.content }}[TOOL_CALLS]{% endif %}{% endfor %}")

# A generic nesting tag system, like Kimi-K3's.
NESTED = ("{% for m in messages %}<|open|>msg<|sep|><|open|>body<|sep|>{{ m.content }}"
          "<|close|>body<|sep|><|close|>msg<|sep|>{% endfor %}")


def turns(source: str):
    return Context(Target(source, "inline", "t")).turn_markers


def test_vocabulary_takes_tags_from_literals_and_control_tokens():
    vocab = vocabulary(CHATML, ("<|endoftext|>",))
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= set(vocab)
    assert list(vocab) == sorted(vocab, key=lambda m: (-len(m), m))  # longest first


@pytest.mark.parametrize("pair", [
    ("<|im_start|>", "<|im_end|>"), ("[INST]", "[/INST]"), ("<start_of_turn>", "<end_of_turn>"),
    ("<think>", "</think>"), ("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
    ("<\uff5ctool\u2581calls\u2581begin\uff5c>", "<\uff5ctool\u2581calls\u2581end\uff5c>"),
])
def test_pairs_are_matched_by_name(pair):
    assert pairs_by_name(pair) == [pair]


def test_sequence_delimiters_are_not_turn_pairs():
    assert pairs_by_name(("<s>", "</s>", "<|begin_of_text|>", "<|end_of_text|>")) == []


def test_chatml_turns_are_named_pairs():
    [t] = turns(CHATML)
    assert (t.opener, t.closer, t.alternatives, t.nests) == ("<|im_start|>", "<|im_end|>", (), False)


def test_llama_turns_are_found_by_structure_with_eom_as_alternative():
    [t] = turns(LLAMA)
    assert (t.opener, t.closer, t.alternatives) == ("<|start_header_id|>", "<|eot_id|>", ("<|eom_id|>",))
    tool_turn = "<|start_header_id|>assistant<|end_header_id|>\n\nx<|python_tag|>[]<|eom_id|>"
    assert unbalanced(tool_turn, [t]) is None


def test_a_role_dispatch_gives_no_alternative_closers():
    assert alternative_closers(MISTRAL, "[/INST]", vocabulary(MISTRAL)) == ()


def test_section_tags_inside_a_turn_are_not_turn_markers():
    source = CHATML.replace("{{ m.content }}", "<think></think>{{ m.content }}")
    assert [(t.opener, t.closer) for t in turns(source)] == [("<|im_start|>", "<|im_end|>")]


def test_nesting_tag_systems_may_nest():
    [t] = turns(NESTED)
    assert (t.opener, t.closer, t.nests) == ("<|open|>", "<|close|>", True)
    assert unbalanced("<|open|>a<|open|>b<|close|>b<|close|>a", [t]) is None
    assert unbalanced("<|open|>a<|open|>b<|close|>b", [t])[0] == "never_closed:<|open|>"


@pytest.mark.parametrize("text,key", [
    ("<|im_start|>user\nhi", "never_closed:<|im_start|>"),
    ("<|im_start|>user\nhi<|im_start|>assistant\n<|im_end|>", "reopened:<|im_start|>"),
    ("<|im_start|>user\nhi<|im_end|><|im_end|>", "orphan_close:<|im_end|>"),
])
def test_unbalanced_names_the_imbalance(text, key):
    [t] = turns(CHATML)
    assert unbalanced(text, [t])[0] == key
    assert unbalanced("<|im_start|>user\nhi<|im_end|>\n", [t]) is None
