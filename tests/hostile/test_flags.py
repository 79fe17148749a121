"""Small breaks of the command line (class 10): flags that wrote into the current folder or were
silently ignored, Hypothesis' ``.hypothesis/`` in the current folder, and a sweep that checked
nothing and said all was well.
"""

from __future__ import annotations

import pytest

SMALLER = "10 smaller"


@pytest.mark.parametrize("name,flags,fragment", [
    ("--crashes ''", ("--crashes", ""), "--crashes: an empty path"),
    ("--engine bogus on a template", ("--engine", "bogus"), "--engine bogus: unknown engine"),
    ("--engine http:// without a host", ("--engine", "http://"), "needs a host"),
    ("--engine 'ftp://x/v1'", ("--engine", "ftp://x/v1"), "unknown engine"),
])
def test_a_bad_flag_is_one_line_before_anything_runs(hostile, tmp_path, sources, name, flags, fragment):
    tpl = tmp_path / "chatml.jinja"
    tpl.write_text(sources.clean, encoding="utf-8")
    args = ("--crashes", tmp_path / "crashes") if flags[0] != "--crashes" else ()
    r = hostile(SMALLER, name, "check", tpl, *flags, *args, expect_rc=2, max_seconds=30)
    assert fragment in r.err


def test_hypothesis_keeps_its_files_in_the_chainfuzz_cache(hostile, tmp_path, sources):
    """Hypothesis writes its charmap cache even without a database; the harness asserts the
    current folder stays empty, and the cache folder holds it instead."""
    tpl = tmp_path / "chatml.jinja"
    tpl.write_text(sources.clean, encoding="utf-8")
    cache = tmp_path / "cache"
    hostile(SMALLER, "Hypothesis storage (.hypothesis/)", "check", tpl, "--max-examples", "5", "--seed", "1",
            "--property", "template.renders", "--crashes", tmp_path / "crashes",
            env={"CHAINFUZZ_CACHE": str(cache), "HYPOTHESIS_STORAGE_DIRECTORY": ""}, expect_rc=0,
            max_seconds=60)
    assert (cache / "hypothesis").is_dir()


def test_a_sweep_whose_every_target_fails_to_load_is_bad_input(hostile, tmp_path):
    """A corpus in the cache (as ``chainfuzz fetch`` leaves it) whose templates none compile:
    every row is n/a, which vouches for nothing."""
    cache = tmp_path / "cache"
    templates = cache / "llama-cpp-python-0.3.36" / "templates"
    templates.mkdir(parents=True)
    (templates.parent / ".complete").write_text("llama-cpp-python==0.3.36\n", encoding="utf-8")
    for name in ("a", "b"):
        (templates / f"{name}.jinja").write_text("{% if %}", encoding="utf-8")
    r = hostile(SMALLER, "sweep of only n/a rows", "sweep", "--max-examples", "5", "--seed", "1", "--jobs", "2",
                "--crashes", tmp_path / "crashes", env={"CHAINFUZZ_CACHE": str(cache)}, expect_rc=2,
                max_seconds=120)
    assert "none of the 2 target(s) could be checked" in r.err
    assert "| a | n/a" in r.out and "Nothing checked" in r.out
