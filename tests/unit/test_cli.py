"""``chainfuzz check`` and ``chainfuzz replay`` from the command line: output, --json, exit codes."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainfuzz
from chainfuzz.internal.text import printable
from chainfuzz.template.render import Renderer, RenderError
from chainfuzz.targets import load_target

FAST = ("--max-examples", "20", "--seed", "1")
ALL_PROPERTIES = ("template.content_preserved", "template.deterministic", "template.engines_agree",
                  "template.generation_prompt", "template.no_repr_leak", "template.prefix_stable",
                  "template.renders", "template.roundtrip", "template.turns_closed")


# --- check: exit 0 / 1 and the --json document ----------------------------------------------

def test_clean_template_passes_every_property(cli, write_template, sources, tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    report = tmp_path / "report.json"
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "crashes", "--json", report)
    assert r.rc == 0, r.out + r.err
    assert "Traceback" not in r.err
    for prop in ALL_PROPERTIES:
        assert prop in r.out
    assert "0 error(s), 0 warning(s)" in r.out
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["failures"] == []
    assert doc["target"]["name"] == "chatml.jinja"
    assert doc["target"]["sha256"] == load_target(tpl).sha256
    assert doc["stats"]["seed"] == 1
    per_prop = doc["stats"]["targets"]["chatml.jinja"]
    assert set(per_prop) == set(ALL_PROPERTIES)
    # --max-examples bounds each property's drawn examples (boundary ones come on top, as
    # Hypothesis' explicit examples do); the renders property never skips
    assert all(0 < s["examples"] - s["given"] <= 20 for s in per_prop.values())
    assert per_prop["template.renders"]["examples"] - per_prop["template.renders"]["given"] == 20
    assert per_prop["template.renders"]["given"] > 20
    assert not (tmp_path / "crashes").exists() or not list((tmp_path / "crashes").iterdir())


def test_defective_template_exits_1_with_a_json_reproducer(cli, write_template, sources, tmp_path):
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    report = tmp_path / "report.json"
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "crashes", "--json", report,
            "--property", "template.renders")
    assert r.rc == 1, r.out + r.err
    assert "ERROR template.renders" in r.out
    assert "NoneType" in r.out
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert set(doc) >= {"target", "failures", "stats"}
    assert doc["target"]["name"] == "nullcrash.jinja"
    assert len(doc["failures"]) == 1
    failure = doc["failures"][0]
    assert failure["property"] == "template.renders"
    assert failure["severity"] == "error"
    assert "NoneType" in failure["message"]
    repro = failure["reproducer"]
    assert isinstance(repro, dict)
    messages = repro["input"]["messages"]
    assert any(m["content"] is None for m in messages)
    # the reproducer reproduces: rendering its input raises the reported error
    with pytest.raises(RenderError) as err:
        Renderer(load_target(tpl)).render(messages, tools=repro["input"].get("tools"),
                                          add_generation_prompt=repro["input"].get(
                                              "add_generation_prompt", False))
    assert err.value.exc_type == "TypeError"
    # ...and the case file it names exists
    assert repro["case_file"] and (tmp_path / "crashes").is_dir()
    assert json.loads(open(repro["case_file"], encoding="utf-8").read())["signature"] == repro["signature"]


def test_warnings_alone_exit_0(cli, write_template, sources, tmp_path):
    tpl = write_template("refuses.jinja", sources.refuses_developer)
    report = tmp_path / "report.json"
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "crashes", "--json", report,
            "--property", "template.renders")
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert [f["severity"] for f in doc["failures"]] == ["warning"], doc["failures"]
    assert "no developer messages" in doc["failures"][0]["message"]
    assert r.rc == 0, r.out + r.err
    assert "0 error(s), 1 warning(s)" in r.out


def test_same_seed_same_findings(cli, write_template, sources, tmp_path):
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    docs = []
    for i in range(2):
        report = tmp_path / f"r{i}.json"
        cli("check", tpl, *FAST, "--crashes", tmp_path / f"c{i}", "--json", report,
            "--property", "template.renders")
        doc = json.loads(report.read_text(encoding="utf-8"))
        docs.append([(f["reproducer"]["signature"], f["reproducer"]["input"]) for f in doc["failures"]])
    assert docs[0] and docs[0] == docs[1]


def test_property_flag_selects_properties(cli, write_template, sources, tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    report = tmp_path / "report.json"
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "c", "--json", report,
            "--property", "template.renders", "template.deterministic")
    assert r.rc == 0
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert set(doc["stats"]["targets"]["chatml.jinja"]) == {"template.renders", "template.deterministic"}
    assert "template.roundtrip" not in r.out


def test_properties_that_apply_to_nothing_at_the_path_are_exit_2(cli, write_template, sources,
                                                                 tmp_path, one_error_line):
    path = write_template("clean", sources.clean)
    r = cli("check", path, "--property", "tokenizer.roundtrip", "--crashes", tmp_path / "c")
    assert "apply to a tokenizer" in one_error_line(r) and "holds a template" in r.err
    # Named alongside one that applies, it is simply not run on the template.
    r = cli("check", path, "--property", "tokenizer.roundtrip", "template.renders",
            "--max-examples", "5", "--crashes", tmp_path / "c")
    assert r.rc == 0, r.err
    assert "template.renders" in r.out and "tokenizer.roundtrip" not in r.out


def test_budget_bounds_the_whole_run(cli, write_template, sources, tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    report = tmp_path / "report.json"
    r = cli("check", tpl, "--budget", "1", "--max-examples", "1000000", "--seed", "1",
            "--crashes", tmp_path / "c", "--json", report)
    assert r.rc == 0, r.out + r.err
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["stats"]["seconds"] < 4
    assert all(s["examples"] < 1000000 for s in doc["stats"]["targets"]["chatml.jinja"].values())


# --- check: bad input is exit 2 with one error line -------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("syntax.jinja", "{% for m in %}{{ m }}{% endfor %}"),
    ("unclosed.jinja", "{{ messages[0].content "),
    ("stray_end.jinja", "{% endif %}"),
    ("unknown_filter.jinja", "{{ messages | no_such_filter }}"),
])
def test_broken_template_is_exit_2(cli, write_template, tmp_path, one_error_line, name, content):
    tpl = write_template(name, content)
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "c")
    line = one_error_line(r)
    assert name in line and "does not compile" in line
    assert r.out == ""
    assert not (tmp_path / "c").exists()


def test_template_too_deeply_nested_to_compile_is_exit_2(cli, write_template, tmp_path,
                                                         one_error_line):
    """jinja2 cannot compile it (RecursionError): a broken template, not an internal error."""
    tpl = write_template("deep.jinja", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}")
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "c", "--property", "template.renders")
    assert "internal error" not in r.out, r.out
    assert "deep.jinja" in one_error_line(r)


def test_unreadable_targets_are_exit_2(cli, tmp_path, one_error_line):
    missing = tmp_path / "missing.jinja"
    assert "no such file" in one_error_line(cli("check", missing, *FAST))
    latin1 = tmp_path / "latin1.jinja"
    latin1.write_bytes("{{ 'caf\u00e9' }}".encode("latin-1"))
    assert "not UTF-8" in one_error_line(cli("check", latin1, *FAST))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty" in one_error_line(cli("check", empty, *FAST))
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 4)
    assert "garbage.gguf" in one_error_line(cli("check", garbage, *FAST))


@pytest.mark.parametrize("flags, fragment", [
    (("--max-examples", "0"), "--max-examples"),
    (("--max-examples", "many"), "--max-examples"),
    (("--budget", "-3"), "--budget"),
    (("--budget", "soon"), "--budget"),
    (("--budget", "nan"), "--budget"),
    (("--seed", "x"), "--seed"),
    (("--frobnicate",), "--frobnicate"),
    (("--property",), "--property"),
    (("--property", "template.no_such_thing"), "template.no_such_thing"),
    (("--property", "template.renders", "nodots"), "nodots"),
], ids=lambda v: "_".join(v) if isinstance(v, tuple) else "")
def test_bad_flags_are_exit_2(cli, write_template, sources, tmp_path, one_error_line, flags, fragment):
    tpl = write_template("chatml.jinja", sources.clean)
    r = cli("check", tpl, "--crashes", tmp_path / "c", *flags)
    assert fragment in one_error_line(r)
    assert r.out == ""


def test_missing_arguments_are_exit_2(cli, one_error_line):
    one_error_line(cli("check"))
    one_error_line(cli())
    one_error_line(cli("no-such-command"))


def test_unwritable_json_path_is_exit_2(cli, write_template, sources, tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    r = cli("check", tpl, *FAST, "--crashes", tmp_path / "c", "--json", tmp_path,
            "--property", "template.renders")
    assert r.rc == 2
    assert "Traceback" not in r.err
    errors = [line for line in r.err_lines if line.startswith("chainfuzz: error:")]
    assert len(errors) == 1 and str(tmp_path) in errors[0]


def test_crashes_dir_that_is_a_file_is_bad_input_not_internal_error(
        cli, write_template, sources, tmp_path, one_error_line):
    """An unusable --crashes is a bad flag (2), not a property's internal error (3)."""
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    not_a_dir = tmp_path / "crashes"
    not_a_dir.write_text("I am a file\n", encoding="utf-8")
    r = cli("check", tpl, *FAST, "--crashes", not_a_dir, "--property", "template.renders")
    assert "internal error" not in r.out
    line = one_error_line(r)
    assert "crashes" in line


def test_bad_input_in_a_fresh_process_prints_no_traceback(cli_subprocess, write_template, tmp_path,
                                                          one_error_line):
    tpl = write_template("broken.jinja", "{% if %}")
    assert "broken.jinja" in one_error_line(cli_subprocess("check", tpl, *FAST))
    assert "--seed" in one_error_line(cli_subprocess("check", tpl, "--seed", "one"))


# --- check: exit 3 is an internal property error ------------------------------------------------

def test_a_property_that_raises_internally_is_exit_3(cli_subprocess, write_template, sources,
                                                     tmp_path):
    tpl = write_template("chatml.jinja", sources.clean)
    props = tmp_path / "properties"
    props.mkdir()
    (props / "broken_prop.py").write_text(textwrap.dedent("""
        import chainfuzz
        from chainfuzz import strategies as cst

        @chainfuzz.property("user.explodes", inputs=lambda ctx: cst.conversations())
        def explodes(ctx, case):
            '''Always raises: a bug in the property, not in the template.'''
            raise ZeroDivisionError("property bug")
    """), encoding="utf-8")
    r = cli_subprocess("check", tpl, *FAST, "--crashes", tmp_path / "c", "--property", "user.explodes",
                       "--property-dir", props, cwd=tmp_path)
    assert r.rc == 3, r.out + r.err
    assert "Traceback" not in r.err
    assert "internal error" in r.out and "ZeroDivisionError" in r.out


# --- replay -----------------------------------------------------------------------------------

def test_replay_says_fails_then_fixed(cli, write_template, sources, tmp_path):
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    crashes = tmp_path / "crashes"
    assert cli("check", tpl, *FAST, "--crashes", crashes, "--property", "template.renders").rc == 1
    cases = sorted(crashes.glob("*.json"))
    assert len(cases) == 1

    r = cli("replay", crashes)
    assert r.rc == 1, r.out + r.err
    assert r.out.splitlines()[0].startswith("fails ")
    assert "1 case(s): 1 fails" in r.out

    tpl.write_text(sources.clean, encoding="utf-8")
    r = cli("replay", cases[0])
    assert r.rc == 0, r.out + r.err
    assert r.out.splitlines()[0].startswith("fixed ")
    assert "target changed since recorded" in r.out
    assert "1 case(s): 1 fixed" in r.out


def test_replay_defaults_to_crashes_folder(cli, write_template, sources, tmp_path, monkeypatch):
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    monkeypatch.chdir(tmp_path)
    assert cli("check", tpl.name, *FAST, "--property", "template.renders").rc == 1
    assert list((tmp_path / "crashes").glob("*.json"))
    r = cli("replay")
    assert r.rc == 1
    assert "crashes" in r.out and r.out.splitlines()[0].startswith("fails ")


def test_replay_of_a_missing_path_is_exit_2(cli, tmp_path, one_error_line):
    assert "nowhere" in one_error_line(cli("replay", tmp_path / "nowhere"))


# --- user properties -----------------------------------------------------------------------------

USER_PROPERTY = '''
import chainfuzz
from chainfuzz import strategies as cst

@chainfuzz.property("template.no_tabs", inputs=lambda ctx: cst.conversations(ctx.markers),
                    severity="error")
def no_tabs(ctx, case):
    """The template itself never writes a tab character."""
    chainfuzz.assume("\\t" not in str(case), "the input has tabs")
    if "\\t" in ctx.render_or_skip(case["messages"], tools=case["tools"]):
        raise chainfuzz.Failure("the template writes a tab", key="tab")
'''


def test_a_property_in_a_named_folder_is_picked_up_by_check_and_replay(tmp_path, cli_subprocess):
    """One function in a folder named with --property-dir is a new invariant for check,
    properties and replay."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.py").write_text(USER_PROPERTY, encoding="utf-8")
    tpl = tmp_path / "tabs.jinja"
    tpl.write_text("{% for m in messages %}{{ m.role }}\t{{ m.content }}\n{% endfor %}", encoding="utf-8")
    mine = ("--property-dir", "rules")
    assert "template.no_tabs" in cli_subprocess("properties", *mine).out
    assert "template.no_tabs" not in cli_subprocess("properties").out
    r = cli_subprocess("check", tpl, "--property", "template.no_tabs", "--seed", "1", "--max-examples", "20",
                       *mine)
    assert r.rc == 1 and "template.no_tabs" in r.out, r.out + r.err
    assert len(list((tmp_path / "crashes").glob("template.no_tabs--*.json"))) == 1
    assert cli_subprocess("replay", *mine).rc == 1  # still fails
    tpl.write_text("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}", encoding="utf-8")
    r = cli_subprocess("replay", *mine)
    assert r.rc == 0 and "fixed" in r.out, r.out + r.err


def test_a_properties_folder_in_the_working_directory_is_not_imported(tmp_path, cli_subprocess, write_template,
                                                                      sources):
    """A project's own ./properties package is its business: chainfuzz neither runs it nor
    trips over chainfuzz's own built-ins there (started inside another checkout of it)."""
    (tmp_path / "properties").mkdir()
    (tmp_path / "properties" / "side_effect.py").write_text(
        "open('imported', 'w').close()\nraise SystemExit('must not run')\n", encoding="utf-8")
    builtin = Path(chainfuzz.__file__).parent / "properties" / "template.py"
    (tmp_path / "properties" / "template.py").write_text(builtin.read_text(encoding="utf-8"), encoding="utf-8")
    tpl = write_template("chatml.jinja", sources.clean)
    r = cli_subprocess("check", tpl, *FAST, "--property", "template.renders")
    assert r.rc == 0, r.out + r.err
    assert not (tmp_path / "imported").exists()


def test_a_broken_user_property_module_is_one_error_line(tmp_path, cli_subprocess, one_error_line):
    (tmp_path / "properties").mkdir()
    (tmp_path / "properties" / "broken.py").write_text("import no_such_module\n", encoding="utf-8")
    line = one_error_line(cli_subprocess("properties", "--property-dir", "properties"))
    assert "broken.py" in line


def test_a_property_dir_that_is_not_a_folder_is_one_error_line(tmp_path, cli_subprocess, one_error_line):
    line = one_error_line(cli_subprocess("properties", "--property-dir", "nowhere"))
    assert "nowhere" in line and "not a folder" in line


# --- what reaches the terminal: escaped, one line, bounded ----------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Lu", "So"])))
def test_printable_text_is_one_line_without_controls(text):
    shown = printable(text)
    assert len(shown.splitlines()) <= 1
    assert not re.search("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff]", shown)
    shown.encode("utf-8")  # a UTF-8 terminal takes it


def test_printable_escapes_visibly_and_clips():
    assert printable("a\x1b[2J\n\u202eb\udcff") == "a\\x1b[2J\\x0a\\u202eb\\udcff"
    assert printable("é 中 😀 \\") == "é 中 😀 \\"  # printable text and backslashes are left alone
    assert printable("x" * 1000, 10) == "x" * 10 + " … [990 characters cut]"


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_3(cli_subprocess, write_template,
                                                                       sources, tmp_path):
    """A plugin that breaks chainfuzz itself (here: replaces `check` with a function that
    raises, its text full of escapes): one ``chainfuzz: internal error:`` line and exit 3; the
    traceback only with CHAINFUZZ_DEBUG=1."""
    tpl = write_template("chatml.jinja", sources.clean)
    props = tmp_path / "plugins"
    props.mkdir()
    (props / "breaker.py").write_text(textwrap.dedent("""
        import chainfuzz.checker

        def check(*args, **kwargs):
            raise RuntimeError("broken\\x1b[2J\\n" + "x" * 100000)

        chainfuzz.checker.check = check
    """), encoding="utf-8")
    args = ("check", tpl, *FAST, "--crashes", tmp_path / "c", "--property-dir", props)
    r = cli_subprocess(*args)
    assert r.rc == 3 and "Traceback" not in r.err, r.err[-2000:]
    [line] = r.err_lines
    assert line.startswith("chainfuzz: internal error: RuntimeError: broken\\x1b[2J\\x0a")
    assert len(line) < 700
    debug = cli_subprocess(*args, env={"CHAINFUZZ_DEBUG": "1"})
    assert debug.rc == 3 and "Traceback" in debug.err


def test_empty_output_paths_are_refused(cli, write_template, sources, one_error_line):
    tpl = write_template("chatml.jinja", sources.clean)
    assert "--crashes" in one_error_line(cli("check", tpl, "--crashes", ""))
    assert "--inputs" in one_error_line(cli("fuzz", tpl, "--budget", "1", "--inputs", ""))


def test_reports_say_when_nothing_could_be_checked_or_replayed(tmp_path):
    from chainfuzz.report import Outcome, ReplayReport, Row, SweepReport

    sweep = SweepReport("c", 1, ["template.renders"], rows=[Row("a", error="does not compile")])
    assert sweep.exit_code == 2 and "none of the 1 target(s)" in sweep.bad_input
    sweep.rows.append(Row("b"))
    assert sweep.exit_code == 0 and not sweep.bad_input
    replay = ReplayReport([Outcome(tmp_path, "p", "fails", "x"), Outcome(tmp_path, "?", "unreadable", "y")])
    assert replay.exit_code == 2 and replay.bad_input == "1 of 2 case(s) could not be replayed (1 unreadable)"
