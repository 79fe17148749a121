"""Case files: file names, contents, de-duplication, portable paths, replay, the pytest plugin."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainfuzz import cases
from chainfuzz.checker import check
from chainfuzz.replayer import replay
from chainfuzz.internal.runner import RunSettings
from chainfuzz.internal.text import clip_value, dumps_json

pytest_plugins = ["pytester"]

RENDERS = ["template.renders"]


def find_null_crash(template, crashes_dir, seed=1):
    """Run template.renders on ``template``; returns the check report."""
    return check(template, property_ids=RENDERS, run=RunSettings(max_examples=20, seed=seed),
                 crashes_dir=crashes_dir)


@pytest.fixture(scope="module")
def recorded_once(tmp_path_factory, sources):
    """One check run, shared: templates/nullcrash.jinja and its one case in crashes/."""
    root = tmp_path_factory.mktemp("recorded")
    tpl = root / "templates" / "nullcrash.jinja"
    tpl.parent.mkdir()
    tpl.write_text(sources.null_crash, encoding="utf-8")
    report = find_null_crash(tpl, root / "crashes")
    assert report.exit_code == 1
    return root


@pytest.fixture
def recorded(recorded_once, tmp_path):
    """A null-crash template under tmp_path/templates and its one case under tmp_path/crashes."""
    for sub in ("templates", "crashes"):
        shutil.copytree(recorded_once / sub, tmp_path / sub)
    [case] = sorted((tmp_path / "crashes").glob("*.json"))
    return tmp_path / "templates" / "nullcrash.jinja", tmp_path / "crashes", case


# --- the record ---------------------------------------------------------------------------------

def test_record_name_and_fields(recorded, sources):
    tpl, crash_dir, case = recorded
    rec = json.loads(case.read_text(encoding="utf-8"))
    assert re.fullmatch(r"template\.renders--nullcrash\.jinja--[0-9a-f]{12}\.json", case.name), case.name
    assert case.name == f"{rec['property']}--{rec['target']['name']}--{rec['signature']}.json"
    assert rec["chainfuzz_case"] == 1
    # The versions that decide a template finding: its renderers, not the tokenizers.
    assert {"python", "chainfuzz", "hypothesis", "transformers", "jinja2", "minijinja"} == set(rec["versions"])
    assert rec["property"] == "template.renders"
    assert rec["severity"] == "error"
    assert rec["status"] == "open"
    assert rec["key"] == sources.null_crash_key
    assert rec["target"]["name"] == "nullcrash.jinja"
    assert rec["target"]["sha256"] == hashlib.sha256(sources.null_crash.encode()).hexdigest()
    assert any(m["content"] is None for m in rec["input"]["messages"])
    assert "NoneType" in rec["observed"]
    assert rec["expected"]
    assert {"python", "chainfuzz", "transformers", "jinja2", "minijinja", "hypothesis"} <= set(rec["versions"])


def test_target_path_is_relative_to_the_crash_folder(recorded):
    tpl, crash_dir, case = recorded
    rec = json.loads(case.read_text(encoding="utf-8"))
    assert rec["target"]["path"] == "../templates/nullcrash.jinja"
    assert not os.path.isabs(rec["target"]["path"])


def test_records_survive_moving_the_checkout(recorded, tmp_path):
    tpl, crash_dir, case = recorded
    moved = tmp_path / "elsewhere" / "checkout"
    moved.mkdir(parents=True)
    shutil.copytree(tmp_path / "templates", moved / "templates")
    shutil.copytree(crash_dir, moved / "crashes")
    shutil.rmtree(tmp_path / "templates")
    outcome = replay(moved / "crashes" / case.name)
    assert outcome.status == "fails", outcome
    assert not outcome.target_changed


def test_corpus_cache_targets_are_stored_as_cache_paths(write_template, sources, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(cache))
    tpl = cache / "some-corpus" / "templates" / "nullcrash.jinja"
    tpl.parent.mkdir(parents=True)
    tpl.write_text(sources.null_crash, encoding="utf-8")
    crash_dir = tmp_path / "project" / "crashes"
    find_null_crash(tpl, crash_dir)
    [case] = crash_dir.glob("*.json")
    rec = json.loads(case.read_text(encoding="utf-8"))
    assert rec["target"]["path"] == "cache:some-corpus/templates/nullcrash.jinja"
    # another machine with its cache elsewhere still finds the target
    other = tmp_path / "other-cache"
    shutil.copytree(cache, other)
    shutil.rmtree(cache)
    monkeypatch.setenv("CHAINFUZZ_CACHE", str(other))
    assert replay(case).status == "fails"


# --- de-duplication ----------------------------------------------------------------------------

def test_finding_the_same_defect_again_writes_no_duplicate(recorded):
    tpl, crash_dir, case = recorded
    before = case.read_text(encoding="utf-8")
    for seed in (1, 2, 3):
        report = find_null_crash(tpl, crash_dir, seed=seed)
        assert any(f.key == json.loads(before)["key"] for _, f in report.findings)
    null_cases = [p for p in crash_dir.glob("*.json")
                  if json.loads(p.read_text(encoding="utf-8"))["key"] == json.loads(before)["key"]]
    assert null_cases == [case]
    assert case.read_text(encoding="utf-8") == before  # not rewritten either


def test_the_cli_reports_the_existing_case_file(cli, recorded, tmp_path):
    tpl, crash_dir, case = recorded
    report = tmp_path / "r.json"
    r = cli("check", tpl, "--max-examples", "20", "--seed", "7", "--crashes", crash_dir,
            "--json", report, "--property", "template.renders")
    assert r.rc == 1
    doc = json.loads(report.read_text(encoding="utf-8"))
    key = json.loads(case.read_text(encoding="utf-8"))["key"]
    [same] = [f for f in doc["failures"] if f["reproducer"]["key"] == key]
    assert os.path.samefile(same["reproducer"]["case_file"], case)
    assert len([p for p in crash_dir.glob("*.json")
                if json.loads(p.read_text(encoding="utf-8"))["key"] == key]) == 1


# --- replay -------------------------------------------------------------------------------------

def test_replay_fails_while_unchanged_and_is_fixed_after_the_fix(recorded, sources):
    tpl, crash_dir, case = recorded
    outcome = replay(case)
    assert (outcome.status, outcome.property, outcome.target_changed) == ("fails", "template.renders", False)
    assert outcome.failing
    tpl.write_text(sources.clean, encoding="utf-8")
    outcome = replay(case)
    assert (outcome.status, outcome.target_changed) == ("fixed", True)
    assert not outcome.failing


def test_replay_notices_a_different_defect(recorded, sources, cli):
    tpl, crash_dir, case = recorded
    tpl.write_text(sources.null_crash.replace("{{ c + '' }}", "{{ c + 1 }}"), encoding="utf-8")
    assert replay(case).status == "fails-differently"
    r = cli("replay", case)
    assert r.rc == 1
    assert r.out.startswith("fails-differently")


def test_replay_of_a_deleted_target_says_it_is_missing(recorded, cli):
    tpl, crash_dir, case = recorded
    tpl.unlink()
    outcome = replay(case)
    assert outcome.status == "missing" and str(tpl.name) in outcome.detail
    assert cli("replay", crash_dir).rc == 2


# --- the pytest plugin ----------------------------------------------------------------------------

@pytest.fixture
def plugin_project(pytester, recorded, sources):
    """A pytester project holding the template and its case file; ``set_case(status, fixed)``."""
    tpl, crash_dir, case = recorded
    (pytester.path / "templates").mkdir()
    project_tpl = pytester.path / "templates" / "nullcrash.jinja"
    shutil.copy(tpl, project_tpl)
    (pytester.path / "crashes").mkdir()
    project_case = pytester.path / "crashes" / case.name

    def set_case(status: str, template_fixed: bool):
        rec = json.loads(case.read_text(encoding="utf-8"))
        rec["status"] = status
        project_case.write_text(json.dumps(rec, indent=2), encoding="utf-8")
        project_tpl.write_text(sources.clean if template_fixed else sources.null_crash, encoding="utf-8")

    return set_case


def run_cases(pytester):
    return pytester.runpytest("-p", "no:cacheprovider", "-rA", "crashes")


@pytest.mark.parametrize("status,fixed,outcome,line", [
    ("open", False, {"xfailed": 1}, "*open defect still present*"),
    ("open", True, {"failed": 1}, '*template.renders now holds*"status": "fixed"*'),
    ("fixed", False, {"failed": 1}, "*regression: template.renders fails again*"),
    ("fixed", True, {"passed": 1}, None),
], ids=["open-still-failing-xfails", "open-now-fixed-asks-to-mark-fixed",
        "fixed-failing-again-is-a-regression", "fixed-holding-passes"])
def test_plugin_outcome_follows_the_case_status(pytester, plugin_project, status, fixed, outcome, line):
    plugin_project(status, template_fixed=fixed)
    result = run_cases(pytester)
    result.assert_outcomes(**outcome)
    if line:
        result.stdout.fnmatch_lines([line])
    assert result.ret == (1 if "failed" in outcome else 0)


def test_plugin_skips_a_case_whose_target_is_not_here(pytester, plugin_project):
    plugin_project("open", template_fixed=False)
    (pytester.path / "templates" / "nullcrash.jinja").unlink()
    result = run_cases(pytester)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*is not on this machine*chainfuzz fetch*"])


def test_plugin_ignores_json_that_is_not_a_case(pytester, plugin_project):
    plugin_project("fixed", template_fixed=True)
    (pytester.path / "crashes" / "package.json").write_text('{"name": "x"}', encoding="utf-8")
    result = run_cases(pytester)
    result.assert_outcomes(passed=1)


def test_case_files_finds_only_cases(recorded, tmp_path):
    tpl, crash_dir, case = recorded
    (crash_dir / "notes.json").write_text('{"hello": 1}', encoding="utf-8")
    (crash_dir / "sub").mkdir()
    shutil.copy(case, crash_dir / "sub" / case.name)
    assert sorted(cases.case_files([crash_dir])) == sorted([case, crash_dir / "sub" / case.name])
    with pytest.raises(cases.UsageError):
        cases.read(crash_dir / "notes.json")


def test_a_renamed_property_keeps_its_old_id_for_old_cases(recorded):
    """chain.single_bos was tokenizer.single_bos: a case file naming the old id resolves to the
    property under its new one (crashes/ holds real ones, which `make test` replays)."""
    from chainfuzz import registry

    assert registry.get("tokenizer.single_bos") is registry.get("chain.single_bos")
    assert "tokenizer.single_bos" not in {p.id for p in registry.all_properties()}
    with pytest.raises(cases.UsageError, match="unknown property 'tokenizer.no_such'"):
        registry.get("tokenizer.no_such")


# --- recording any text (hostile class 1 unit level) ---------------------------------------------

# Text as templates and file names produce it: lone surrogates, controls, anything. A high and a
# low surrogate side by side read back as the one character they encode (JSON cannot tell them
# apart), so the round trip is checked on text without such pairs.
ANY_TEXT = st.text(st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Lu", "Ll", "So", "Nd"])).filter(
    lambda s: not re.search("[\ud800-\udbff][\udc00-\udfff]", s))


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_dumps_json_is_strict_utf8_and_reads_back_the_same_text(text):
    doc = dumps_json({"message": text, text: [text]})
    doc.encode("utf-8")  # strict: no lone surrogate left raw
    assert json.loads(doc) == {"message": text, text: [text]}


def test_a_file_name_that_is_not_utf8_maps_back_to_its_bytes():
    name = os.fsdecode(b"t\xff.jinja")  # how Python holds it: surrogate-escaped
    doc = dumps_json({"name": name})
    assert "\\udcff" in doc and "t" in doc  # readable, the odd byte escaped
    assert os.fsencode(json.loads(doc)["name"]) == b"t\xff.jinja"


def test_free_text_is_clipped_with_a_note_and_structures_are_bounded():
    assert clip_value("E" * 10) == "E" * 10
    clipped = clip_value("E" * 10**6)
    assert len(clipped) < 20_100 and clipped.endswith(f"[{10**6 - 20_000} characters cut]")
    big = clip_value(["x"] * 10**5)
    assert isinstance(big, str) and "characters cut" in big
    assert clip_value({"a": [1, 2]}) == {"a": [1, 2]}
    assert clip_value(10**5000).startswith("<int")  # past str()'s digit limit: still recordable


# --- writing: atomic, unique temporary names, one winner (hostile class 8 unit level) ------------

def _rec(signature="0123456789ab", message="m"):
    return {"chainfuzz_case": 1, "property": "template.renders", "severity": "error",
            "signature": signature, "status": "open", "message": message, "key": "k",
            "target": {"path": "x.jinja", "name": "x.jinja"}, "input": {"messages": []}}


def test_write_reports_exactly_one_writer_and_leaves_no_temporary_file(tmp_path):
    path, written = cases.write(_rec(), tmp_path)
    assert written and path.exists()
    again, written = cases.write(_rec(message="other"), tmp_path)
    assert again == path and not written
    assert json.loads(path.read_text(encoding="utf-8"))["message"] == "m"  # never overwritten
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_case_file_that_cannot_be_written_is_a_chainfuzz_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(cases.ChainfuzzError, match="cannot write case file"):
        cases.write(_rec(), blocker / "crashes")


def test_file_names_stay_in_the_crash_folder(tmp_path):
    rec = _rec()
    rec["property"] = "../../evil/prop"
    rec["target"]["name"] = "../\x1b[2J\udcff"
    path, written = cases.write(rec, tmp_path)
    assert written and path.parent == tmp_path
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", path.name)


# --- reading: bounded and typed (hostile class 6 unit level) --------------------------------------

@pytest.mark.parametrize("content,reason", [
    (b"5", "a JSON number, not an object"),
    (b"null", "a JSON null, not an object"),
    (b'"chainfuzz_case"', "a JSON string, not an object"),
    (b'{"chainfuzz_case": 1}', "missing property, target, input"),
    (b'{"chainfuzz_case": 1, "property": 3, "target": {"path": "x"}, "input": {}}',
     '"property" is a JSON number, expected string'),
    (b'{"chainfuzz_case": 1, "property": "p", "target": {"path": 7}, "input": {}}',
     '"target.path" is a JSON number, expected string'),
    (b'{"chainfuzz_case": 1, "property": "p", "target": {"path": "x", "engines": [1]}, "input": {}}',
     '"target.engines" must be a list of strings'),
    (b'{"chainfuzz_case": 9, "property": "p", "target": {"path": "x"}, "input": {}}', "newer"),
    (b'{"chainfuzz_case": 1, "x": "\xff"}', "not UTF-8"),
    (b'{"chainfuzz_case": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"chainfuzz_case": 1, "x": ' + b"9" * 5000 + b"}", "not JSON"),
], ids=["number", "null", "string", "missing-fields", "property-number", "path-number",
        "engines-numbers", "newer-format", "not-utf8", "deep", "huge-int"])
def test_read_refuses_what_is_not_a_usable_case_in_one_line(tmp_path, content, reason):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(cases.UnreadableCase) as err:
        cases.read(path)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_read_and_is_case_never_wait_on_a_fifo(tmp_path):
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would wait forever
    assert not cases.is_case(fifo)
    with pytest.raises(cases.UnreadableCase, match="not a regular file"):
        cases.read(fifo)
    assert cases.case_files([tmp_path]) == [fifo]  # listed, so replay says why it is unreadable


def test_plugin_reports_an_unreadable_case_in_one_line(pytester, plugin_project):
    plugin_project("open", template_fixed=False)
    (pytester.path / "crashes" / "broken.json").write_bytes(b'{"chainfuzz_case": 1, "input": 5}')
    result = run_cases(pytester)
    result.assert_outcomes(xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*cannot replay*broken.json*not a chainfuzz case (missing property, target)*"])
