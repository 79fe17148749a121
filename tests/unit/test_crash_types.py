"""Crash mode's exception types and raising frames (`chainfuzz.fuzz.crash`): one class per
property, one frame per property and per defect, named so ClusterFuzz's crash state keeps
distinct defects apart."""

from __future__ import annotations

import re
import traceback

import pytest

from chainfuzz import PropertyFailed
from chainfuzz.fuzz import crash


@pytest.mark.parametrize("prop_id, name", [
    ("template.renders", "TemplateRendersFailed"),
    ("template.content_preserved", "TemplateContentPreservedFailed"),
    ("tokenizer.roundtrip", "TokenizerRoundtripFailed"),
    ("tokenizer.special_tokens_inert", "TokenizerSpecialTokensInertFailed"),
    ("3rd-party.x", "Property3rdPartyXFailed"),
])
def test_failure_type_is_one_class_per_property(prop_id, name):
    cls = crash.failure_type(prop_id)
    assert cls.__name__ == name and cls.__module__ == "chainfuzz.fuzz.crash"
    assert issubclass(cls, PropertyFailed) and issubclass(cls, AssertionError)
    assert crash.failure_type(prop_id) is cls  # cached: `except` clauses can name it


def _raised(prop_id: str, key: str) -> tuple[BaseException, list[str]]:
    with pytest.raises(PropertyFailed) as info:
        crash.raise_failure(prop_id, key, "t.jinja")
    return info.value, [f.name for f in traceback.extract_tb(info.value.__traceback__)]


def test_raising_frames_name_the_property_and_the_defect():
    exc, frames = _raised("template.renders", "TypeError@line 2:x")
    assert type(exc) is crash.failure_type("template.renders")
    assert frames[-2:] == ["property_template_renders", crash.frame_names("template.renders",
                                                                          "TypeError@line 2:x")[0]]
    assert "template.renders" in str(exc) and "TypeError@line 2:x" in str(exc) and "t.jinja" in str(exc)
    # the same defect: the same frames (stable); another key of the same property: another
    # defect frame (planted twin); another property: both frames differ
    assert _raised("template.renders", "TypeError@line 2:x")[1][-2:] == frames[-2:]
    other_key = _raised("template.renders", "UndefinedError@line 3:y")[1]
    assert other_key[-2] == frames[-2] and other_key[-1] != frames[-1]
    other_prop = _raised("template.turns_closed", "TypeError@line 2:x")[1]
    assert other_prop[-2] != frames[-2] and other_prop[-1] != frames[-1]


def test_defect_frame_has_no_digit_run_for_clusterfuzz_to_normalise():
    for key in ("a", "1234", "lenient[null_content]:repr@user.content"):
        name = crash.frame_names("p", key)[0]
        assert re.fullmatch(r"defect_[a-p]{10}", name), name


def test_message_escapes_what_targets_control():
    exc, _ = _raised("template.renders", "key\x1b[2J\n")
    assert "\x1b" not in str(exc) and "\n" not in str(exc)
