"""``chainfuzz.template.constraints``: what a template accepts, learned by rendering probes, and
the generator narrowed to it (`Context.conversations`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainfuzz.context import Context
from chainfuzz.strategies import IRREGULARITY, SYSTEM_PLACEMENT, allowed, edge_conversations
from chainfuzz.targets import Target
from chainfuzz.template.constraints import Accepts, learn_accepts

# ChatML that renders every shape: content parts, null content, tool calls, object results.
_BODY = """{%- for m in messages -%}
<|im_start|>{{ m.role }}
{%- if m.content is string %}{{ m.content }}{% elif m.content is iterable and m.content is not mapping -%}
{%- for p in m.content %}{{ p.text if p.text is defined else p | tojson }}{% endfor -%}
{%- elif m.content is not none %}{{ m.content | tojson }}{% endif -%}
{%- for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }}</tool_call>{% endfor -%}
<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}"""
PERMISSIVE = _BODY
ALTERNATING = """{%- for m in messages | rejectattr('role', 'equalto', 'system') | list -%}
{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif -%}{%- endfor -%}""" + _BODY
CRASHES_ON_PARTS = """{%- for m in messages -%}
<|im_start|>{{ m.role + '\n' + (m.content or '') }}<|im_end|>
{% endfor -%}"""
SYSTEM_FIRST_ONLY = """{%- for m in messages -%}
{%- if m.role == 'system' and not loop.first %}{{ raise_exception('System message must be at the beginning.') }}{% endif -%}
{%- endfor -%}""" + _BODY
NO_TOOLS = """{%- for m in messages -%}
{%- if m.role == 'tool' %}{{ raise_exception('Only user, assistant and system roles are supported!') }}{% endif -%}
{%- endfor -%}""" + _BODY


def context(source: str) -> Context:
    return Context(Target(source=source, path="inline.jinja", name="inline.jinja",
                          special_tokens={"bos_token": "<s>", "eos_token": "</s>"}))


def test_a_permissive_template_accepts_everything():
    accepts = context(PERMISSIVE).accepts
    assert accepts.refused == ()
    assert accepts.strategy_kwargs() == Accepts().strategy_kwargs()
    assert accepts.summary() == ""


def test_strict_alternation_is_learned_and_its_permissive_twin_is_not():
    accepts = context(ALTERNATING).accepts
    assert accepts.irregularities == ("none", "system_mid")  # a system message does not count
    assert set(accepts.system_placements) == {"none", "first", "repeated", "mid"}  # developer counts
    assert "roles must alternate" in accepts.summary()
    assert context(PERMISSIVE).accepts.irregularities == IRREGULARITY


def test_a_crash_on_content_parts_is_a_refusal_with_its_message():
    accepts = context(CRASHES_ON_PARTS).accepts
    assert not accepts.content_parts
    assert dict(accepts.refused)["content_parts"].startswith("TypeError: can only concatenate str")
    assert "content as a list of text parts (TypeError" in accepts.summary()
    assert accepts.null_content  # `m.content or ''` takes null


def test_system_mid_conversation_refused():
    accepts = context(SYSTEM_FIRST_ONLY).accepts
    assert accepts.system_placements == ("none", "first", "developer")
    assert "system_mid" not in accepts.irregularities
    assert "System message must be at the beginning." in dict(accepts.refused)["placement:mid"]


def test_tool_messages_refused():
    accepts = context(NO_TOOLS).accepts
    assert not accepts.tools and not accepts.parallel_calls
    assert accepts.tool_schemas  # a tools list alone is fine
    assert accepts.system_placements == SYSTEM_PLACEMENT


def test_learning_is_a_few_renders():
    ctx = context(ALTERNATING)
    assert ctx.accepts.probes <= 20


def test_a_template_that_refuses_everything_is_fuzzed_everywhere():
    """Nothing renders: nothing is narrowed, and template.renders reports the refusal."""
    accepts = learn_accepts(lambda msgs, tools=None: (_ for _ in ()).throw(ValueError("no")))
    assert accepts.strategy_kwargs() == Accepts().strategy_kwargs()
    assert accepts.refused


TEMPLATES = {"alternating": ALTERNATING, "parts": CRASHES_ON_PARTS, "system_first": SYSTEM_FIRST_ONLY,
             "no_tools": NO_TOOLS}
CONTEXTS = {name: context(src) for name, src in TEMPLATES.items()}


@pytest.mark.parametrize("name", TEMPLATES)
def test_drawn_accepted_conversations_render(name):
    ctx = CONTEXTS[name]

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(ctx.conversations(), st.booleans())
    def renders(case, flag):
        assert allowed(case, **ctx.accepts.strategy_kwargs())
        ctx.render(case["messages"], tools=case["tools"], add_generation_prompt=flag)

    renders()


@pytest.mark.parametrize("name", TEMPLATES)
def test_accepted_edge_cases_render(name):
    ctx = CONTEXTS[name]
    cases = ctx.edge_conversations()
    assert len(cases) >= 10
    for case in cases:
        if case["messages"][0]["role"] in ("system", "developer") and len(case["messages"]) == 1:
            continue  # a lone system message: no probe says whether it renders
        ctx.render(case["messages"], tools=case["tools"])


def test_overrides_narrow_the_learned_space():
    ctx = CONTEXTS["alternating"]
    kw = ctx._constraints({"tools": False, "irregularities": ("double_user", "system_mid")})
    assert kw["tools"] is False and kw["tool_schemas"] is False
    assert kw["irregularities"] == ("system_mid",)
    edges = ctx.edge_conversations(tools=False, irregularities=("double_user", "system_mid"))
    assert edges == edge_conversations(**kw)
    assert any("<|im_end|>" in str(m["content"]) for c in edges for m in c["messages"])  # markers placed
    assert not any(m["role"] == "tool" for c in edges for m in c["messages"])


NEEDS_TOOLS = """{%- for t in tools %}<tools>{{ t.function.name }}</tools>{% endfor -%}""" + _BODY


def test_a_template_that_needs_a_tools_list_gets_one_in_every_case():
    """Hermes' tool-use template iterates ``tools`` unconditionally: it is learned with one."""
    ctx = context(NEEDS_TOOLS)
    accepts = ctx.accepts
    assert accepts.schemas_required and accepts.system_placements == SYSTEM_PLACEMENT
    assert [k for k, _ in accepts.refused] == ["no_tool_schemas"]

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(ctx.conversations())
    def renders(case):
        assert case["tools"]
        ctx.render(case["messages"], tools=case["tools"])

    renders()


@pytest.mark.parametrize("source, learned", [(NEEDS_TOOLS, True), (PERMISSIVE, True)])
def test_turn_structure_is_learned_with_a_tools_list_where_the_template_needs_one(source, learned):
    """Without one, every probe of a Hermes-like template fails and roundtrip and
    turns_closed could check nothing; its permissive twin learns the same either way."""
    ctx = context(source)
    assert bool(ctx.structure.start) is learned
    assert ctx.turn_markers, ctx.no_turn_markers
