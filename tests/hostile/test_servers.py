"""Hostile OpenAI-compatible servers (`servers.py`): real HTTP servers on 127.0.0.1, each doing
one hostile thing. Every exchange has a total deadline and a size cap, and a server's answer
of the wrong shape is a finding of the engine property that asked (or bad input at start-up),
never a traceback, a hang or the machine's memory.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from servers import (MALFORMED, answer, endless_body, endless_events,  # noqa: E402
                     openai_server, silent_after_events, trickle)

from chainfuzz.engines import EngineCrash, EngineError  # noqa: E402
from chainfuzz.engines.http import MAX_BODY, OpenAIEngine, _max_events  # noqa: E402
from chainfuzz.errors import UsageError  # noqa: E402
from chainfuzz.internal import limits  # noqa: E402

STREAM = "engine.stream_matches_full"


@pytest.fixture(scope="module")
def prompt(tiny):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(tiny)).apply_chat_template(
        [{"role": "user", "content": "Hello there"}], add_generation_prompt=True)
    return list(ids if isinstance(ids, list) else ids["input_ids"])


def _engine(url, tiny, timeout: float = 3.0) -> OpenAIEngine:
    engine = OpenAIEngine(url, tiny)
    engine.timeout = timeout
    return engine


# -- the HTTP client: each hostile answer is EngineCrash within the call's deadline -----------

CLIENT = [  # (name, behaviour, route, what the crash says)
    ("endless body", endless_body, "completion", f"more than {MAX_BODY} bytes"),
    ("trickle", trickle, "completion", "no whole answer within 3s"),
    ("endless events", endless_events, "stream", f"more than {_max_events(24)} events"),
    ("silent stream", silent_after_events, "stream", "no whole answer within 3s"),
    *[(f"malformed {k}", answer(v), "completion", "a malformed answer") for k, v in MALFORMED.items()],
]


@pytest.mark.parametrize("name,behaviour,on,says", CLIENT, ids=[c[0] for c in CLIENT])
def test_a_hostile_answer_is_an_engine_crash_within_the_deadline(tiny, prompt, name, behaviour, on, says):
    with openai_server(tiny, hostile=behaviour, on=on) as url:
        engine = _engine(url, tiny)
        start = time.monotonic()
        with pytest.raises(EngineCrash) as err:
            if on == "stream":
                engine.stream(prompt, 24, [])
            else:
                engine.complete(prompt, 24, [])
        assert time.monotonic() - start < 3 + 2  # the deadline, and a margin for a loaded machine
        assert url.server.hits == 1
    message = str(err.value)
    assert says in message and "\n" not in message and "\x1b" not in message, message


def test_a_well_behaved_server_twin_streams_and_completes(tiny, prompt):
    from servers import TEXT

    with openai_server(tiny) as url:
        engine = _engine(url, tiny)
        assert engine.complete(prompt, 24, []) == TEXT
        assert "".join(engine.stream(prompt, 24, ["fox"])) == TEXT[:TEXT.find("fox")]


def test_a_call_cut_by_the_budget_is_budget_exhausted_not_a_hang(tiny, prompt):
    with openai_server(tiny, hostile=trickle, on="completion") as url:
        engine = _engine(url, tiny, timeout=180)
        start = time.monotonic()
        with limits.budget(2), pytest.raises(limits.BudgetExhausted):
            engine.complete(prompt, 24, [])
        assert time.monotonic() - start < 2 + 2


STARTUP = [  # a server that misbehaves while chainfuzz probes it
    ("models null", answer(b"null"), "models", "GET /models is not an OpenAI model list"),
    ("models nested", answer(MALFORMED["nested-3000"]), "models", "GET /models: not JSON"),
    ("models endless", endless_body, "models", f"more than {MAX_BODY} bytes"),
    ("probe choices object", answer(MALFORMED["choices-object"]), "probe", "choices is an object"),
    ("probe choice null", answer(MALFORMED["choice-null"]), "probe", "a choice is null"),
]


@pytest.mark.parametrize("name,behaviour,on,says", STARTUP, ids=[c[0] for c in STARTUP])
def test_a_server_misbehaving_at_start_up_is_refused_in_one_line(tiny, name, behaviour, on, says):
    with openai_server(tiny, hostile=behaviour, on=on) as url:
        with pytest.raises(EngineError if on == "probe" else UsageError) as err:
            OpenAIEngine(url, tiny)
    assert says in str(err.value) and "\n" not in str(err.value), str(err.value)


# -- the CLI: `check MODEL --engine URL` ------------------------------------------------------

def _check(hostile, tiny, url, tmp_path, *extra, name: str, cls: str, **kw):
    return hostile(cls, name, "check", tiny, "--engine", url, "--property", STREAM,
                   "--crashes", tmp_path / "crashes", "--max-examples", "3", "--seed", "1", *extra, **kw)


CLI_FINDINGS = [  # (class, name, behaviour, route): a finding of the property that asked
    ("3 memory", "endless HTTP body", endless_body, "completion"),
    ("4 hangs", "event stream without [DONE], endless", endless_events, "stream"),
    ("6 bad input", "server answers choices: {}", answer(MALFORMED["choices-object"]), "completion"),
    ("6 bad input", "server answers null", answer(MALFORMED["null"]), "completion"),
    ("6 bad input", "server answers 3000-deep nesting", answer(MALFORMED["nested-3000"]), "stream"),
    ("6 bad input", "server answers non-UTF-8", answer(MALFORMED["not-utf8"]), "completion"),
]


@pytest.mark.parametrize("cls,name,behaviour,on", CLI_FINDINGS, ids=[c[1] for c in CLI_FINDINGS])
def test_a_hostile_answer_during_a_property_is_a_finding(hostile, tiny, tmp_path, cls, name, behaviour, on):
    with openai_server(tiny, hostile=behaviour, on=on) as url:
        r = _check(hostile, tiny, url, tmp_path, name=name, cls=cls, expect_rc=1, max_seconds=90)
    cases = r.cases()
    assert cases and all(c["property"] == STREAM for c in cases), r.out
    assert any(c["key"] == "http(llama-cpp-python):crashed" for c in cases), [c["key"] for c in cases]


@pytest.mark.parametrize("behaviour", [trickle, silent_after_events], ids=["trickle", "silent stream"])
def test_a_server_that_never_finishes_answering_ends_with_the_budget(hostile, tiny, tmp_path, behaviour):
    on = "stream" if behaviour is silent_after_events else "completion"
    with openai_server(tiny, hostile=behaviour, on=on) as url:
        r = _check(hostile, tiny, url, tmp_path, "--budget", "15", name=f"server: {behaviour.__name__}",
                   cls="4 hangs", expect_rc=(0, 1), max_seconds=15 + 10)
        assert url.server.hits >= 1


@pytest.mark.parametrize("name,behaviour,on", [(n, b, o) for n, b, o, _ in STARTUP],
                         ids=[s[0] for s in STARTUP])
def test_a_server_misbehaving_at_start_up_is_one_error_line(hostile, tiny, tmp_path, name, behaviour, on):
    with openai_server(tiny, hostile=behaviour, on=on) as url:
        r = _check(hostile, tiny, url, tmp_path, name=f"start-up: {name}", cls="6 bad input",
                   expect_rc=2, max_seconds=60)
    assert url in r.err_lines[0]
    assert not r.cases()


def test_a_well_behaved_server_twin_has_no_finding(hostile, tiny, tmp_path):
    with openai_server(tiny) as url:
        r = _check(hostile, tiny, url, tmp_path, name="well-behaved server", cls="6 bad input",
                   expect_rc=0, max_seconds=90)
    assert not r.cases() and url.server.hits == 0
