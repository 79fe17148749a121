"""The default search finds each planted defect, and stays quiet on its clean twin.

Where ``test_template_properties.py`` searches one property at a time with a fixed number of
examples, these run the real CLI the way a user does: ``chainfuzz check PATH --budget 10``
with every property sharing the budget, no ``--property`` and no ``--max-examples``. Each
defect must be reported by the named property under the expected key; its twin (the same
target with that defect fixed) must have no finding of that property. The seed is fixed so
that a failure reproduces; the search must find the defect at any seed.

The targets: ``templates/search_<what>_defect.jinja`` and ``search_<what>_clean.jinja``, and
the tokenizers of ``planted_tokenizers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import planted_tokenizers as pt
import pytest

TEMPLATES = Path(__file__).parents[1] / "templates"
BUDGET = 10  # check's --budget, as a user would pass it
SEED = 0

NULL_CRASH = "TypeError@line 4:unsupported operand type(s) for +: 'NoneType' and 'str'"


@dataclass(frozen=True)
class Planted:
    defect: str  # templates/<defect>.jinja, or a builder in planted_tokenizers
    clean: str  # its twin, named the same way
    finds: dict[str, str]  # property -> key prefix the defect's run reports
    clean_of: str  # the property that has no finding on the twin
    twin_keeps: dict[str, str] = field(default_factory=dict)  # findings the twin still has

    @property
    def id(self) -> str:
        return self.defect


PLANTED = [
    # Qwen2.5-style ChatML with tools; the defect has no branch for role "tool".
    Planted("search_tool_drop_defect", "search_tool_drop_clean",
            {"template.content_preserved": "dropped:tool:content"}, "template.content_preserved"),
    # Llama-2/Mistral-style: strict alternation (raise_exception otherwise); the defect's render
    # loop stops before the last message (and so a lone user turn's system prompt goes with it).
    Planted("search_alternate_defect", "search_alternate_clean",
            {"template.content_preserved": "dropped:"}, "template.content_preserved"),
    # A TypeError on null assistant content, and tool-call arguments never written: two
    # defects of two properties in one template. The twin keeps the crash only.
    Planted("search_null_args_defect", "search_null_args_clean",
            {"template.renders": NULL_CRASH,
             "template.content_preserved": "dropped:assistant:tool_call.arguments"},
            "template.content_preserved", twin_keeps={"template.renders": NULL_CRASH}),
    # A decoder that strips one leading space (planted_tokenizers' roundtrip defect).
    Planted("roundtrip_strip_defect", "clean",
            {"tokenizer.roundtrip": "hf:leading space dropped"}, "tokenizer.roundtrip"),
]


def target(name: str, folder: Path) -> Path:
    """The path ``check`` is given for ``name``: a template file, or a tokenizer built here."""
    if name in pt.BUILDERS:
        return pt.BUILDERS[name](folder / name)
    return TEMPLATES / f"{name}.jinja"


def check_default(cli_subprocess, tmp_path: Path, name: str) -> tuple[dict, dict[str, list[str]]]:
    """Run ``check --budget 10`` on ``name`` with every property; (the --json report, each
    property's finding keys). Every reported finding must have its case file in ``--crashes``."""
    path = target(name, tmp_path / "targets")
    report_path, crashes = tmp_path / "report.json", tmp_path / "crashes"
    result = cli_subprocess("check", path, "--budget", BUDGET, "--seed", SEED, "--json", report_path,
                            "--crashes", crashes, timeout=BUDGET + 60)
    assert result.rc in (0, 1), (result.rc, result.err)  # no bad input, no internal error
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["stats"]["internal_errors"] == [], report["stats"]["internal_errors"]
    keys: dict[str, list[str]] = {}
    for failure in report["failures"]:
        keys.setdefault(failure["property"], []).append(failure["reproducer"]["key"])
        assert Path(failure["reproducer"]["case_file"]).parent == crashes
        assert Path(failure["reproducer"]["case_file"]).is_file()
    return report, keys


def stats(report: dict, prop: str) -> dict:
    [per_target] = report["stats"]["targets"].values()
    return per_target[prop]


def test_every_search_template_is_planted_with_its_twin():
    """Each search_* template in templates/ is a defect or a twin listed here."""
    on_disk = {p.stem for p in TEMPLATES.glob("search_*.jinja")}
    listed = {name for p in PLANTED for name in (p.defect, p.clean) if name not in pt.BUILDERS}
    assert on_disk == listed
    assert all(p.defect.endswith("_defect") and p.clean == p.defect[:-len("defect")] + "clean"
               for p in PLANTED if p.defect not in pt.BUILDERS)


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.id)
def test_default_check_finds_the_defect(planted, cli_subprocess, tmp_path):
    report, keys = check_default(cli_subprocess, tmp_path, planted.defect)
    for prop, prefix in planted.finds.items():
        assert any(k.startswith(prefix) for k in keys.get(prop, [])), (
            f"{prop} reported {keys.get(prop, [])}, no {prefix!r}, after "
            f"{stats(report, prop)['examples']} examples ({stats(report, prop)['skipped']} skipped) "
            f"in {stats(report, prop)['seconds']}s; all findings: {keys}")


@pytest.mark.parametrize("planted", PLANTED, ids=lambda p: p.clean)
def test_default_check_passes_the_twin(planted, cli_subprocess, tmp_path):
    report, keys = check_default(cli_subprocess, tmp_path, planted.clean)
    assert keys.get(planted.clean_of, []) == [], keys
    assert stats(report, planted.clean_of)["examples"] > 0, "the twin was never checked"
    for prop, prefix in planted.twin_keeps.items():
        assert any(k.startswith(prefix) for k in keys.get(prop, [])), keys
