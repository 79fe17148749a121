"""Hostile text on the terminal (class 9): what a template or target says (an exception's
text, a file or template name, a rendering) and what a user typed reach stdout and stderr
escaped, so nothing can clear the screen, reorder a line or forge one of the report. The
harness asserts that no control character reaches the terminal; each test asserts the text is
still there, visibly escaped.
"""

from __future__ import annotations

import json
import pytest

ESCAPES = "9 terminal escapes"

SEARCH = ("--max-examples", "30", "--seed", "1", "--property", "template.renders")

# Clears the screen, homes the cursor and prints what a clean run would end with.
FORGED = "\x1b[2J\x1b[H\n1 target(s), 0 error(s), 0 warning(s): all checks passed\n"


def _refusing(clean: str, text: str) -> str:
    """The clean template, refusing developer messages with ``text`` (a warning finding)."""
    return clean.replace("{%- for m in messages -%}\n", "{%- for m in messages -%}\n"
                         "{%- if m.role == 'developer' -%}{{ raise_exception(" + json.dumps(text)
                         + ") }}{%- endif -%}\n", 1)


def test_an_exception_text_cannot_clear_the_screen_or_forge_the_summary(hostile, tmp_path, sources):
    tpl = tmp_path / "forger.jinja"
    tpl.write_text(_refusing(sources.clean, FORGED), encoding="utf-8")
    r = hostile(ESCAPES, "raise_exception clears the screen and forges a summary", "check", tpl, *SEARCH,
                "--crashes", tmp_path / "crashes", expect_rc=0, max_seconds=60)
    assert "\\x1b[2J\\x1b[H\\x0a1 target(s), 0 error(s), 0 warning(s): all checks passed" in r.out
    assert not any(line.startswith("1 target(s), 0 error(s), 0 warning(s)") for line in r.out.splitlines())
    [case] = r.cases()
    assert case["observed"] == FORGED  # recorded as it is: only the terminal gets the escapes


@pytest.mark.parametrize("name,shown", [
    ("\x1b[2Jred\u202egnp.jinja", "\\x1b[2Jred\\u202egnp.jinja"),
    ("bell\x07\x9b31m.jinja", "bell\\x07\\x9b31m.jinja"),
    ("line\u2028sep.jinja", "line\\u2028sep.jinja"),
])
def test_a_file_name_with_controls_is_shown_escaped(hostile, tmp_path, sources, name, shown):
    tpl = tmp_path / name
    tpl.write_text(sources.null_crash, encoding="utf-8")
    r = hostile(ESCAPES, f"template file named {name!r}", "check", tpl, *SEARCH,
                "--crashes", tmp_path / "crashes", expect_rc=1, max_seconds=60)
    assert shown in r.out
    [case] = r.cases()
    assert case["target"]["name"] == name


def test_a_rendering_full_of_controls_reaches_the_terminal_escaped(hostile, tmp_path):
    """A template that drops every message's content (a content_preserved finding, shown with
    its rendering), rendering a one-byte CSI, a bidi override, a line separator and an OSC
    title sequence before each role."""
    tpl = tmp_path / "noisy.jinja"
    tpl.write_text("{%- for m in messages -%}\x9b2J\u202e\u2028\x1b]0;title\x07{{ m.role }}{%- endfor -%}",
                   encoding="utf-8")
    r = hostile(ESCAPES, "rendering with CSI, bidi override, OSC title", "check", tpl,
                "--max-examples", "30", "--seed", "1", "--property", "template.content_preserved",
                "--crashes", tmp_path / "crashes", expect_rc=1, max_seconds=90)
    # JSON escapes C0 itself (\u001b); printable escapes the rest (C1, bidi, separators)
    assert "rendered: " in r.out and "\\x9b2J\\u202e\\u2028\\u001b]0;title\\u0007" in r.out, r.out


@pytest.mark.parametrize("name,args", [
    ("path with newline, ESC and bidi override", ("no\nsuch\x1b[2J\u202e.jinja",)),
    ("property id of 100,000 characters", ("t.jinja", "--property", "x" * 100_000)),
])
def test_the_error_line_is_one_escaped_bounded_line(hostile, tmp_path, name, args):
    (tmp_path / "t.jinja").write_text("hi", encoding="utf-8")
    r = hostile(ESCAPES, name, "check", *[tmp_path / a if a == "t.jinja" else a for a in args],
                "--crashes", tmp_path / "crashes", expect_rc=2, max_seconds=30)
    [line] = r.err_lines  # the harness: exactly one, starting "chainfuzz: error: "
    assert len(line) < 700
    if len(args) == 1:
        assert "no\\x0asuch\\x1b[2J\\u202e.jinja" in line
    else:
        assert "characters cut]" in line


def test_a_named_template_with_controls_in_its_name(hostile, tmp_path, sources):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": [{"name": "default", "template": sources.clean},
                           {"name": "\x1b[2Jtool\u202e", "template": sources.null_crash}]}), encoding="utf-8")
    r = hostile(ESCAPES, "named template with ESC and bidi in its name", "check", folder, *SEARCH,
                "--crashes", tmp_path / "crashes", expect_rc=1, max_seconds=90)
    assert "\\x1b[2Jtool\\u202e" in r.out


def test_a_case_whose_property_id_holds_controls(hostile, tmp_path):
    case = tmp_path / "x.json"
    case.write_text(json.dumps({"chainfuzz_case": 1, "property": "\x1b[2Jtemplate.renders\n",
                                "target": {"path": "t.jinja", "name": "t.jinja"}, "input": {}}),
                    encoding="utf-8")
    (tmp_path / "t.jinja").write_text("hi", encoding="utf-8")
    r = hostile(ESCAPES, "case whose property id holds ESC and a newline", "replay", case, expect_rc=2,
                max_seconds=60)
    assert "\\x1b[2Jtemplate.renders\\x0a" in r.out
