"""chainfuzz as users get it: the sdist and the wheel built, the wheel installed into a fresh
virtualenv with no source tree on its path, and the commands run from an empty folder.

The build and the install take about a minute (dependencies come from pip's cache); every
test here shares them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

pytestmark = pytest.mark.packaging


def _run(cmd, *, cwd: Path, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**clean, **(env or {})})


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist, and the wheel `build` makes from that sdist (so the sdist is tested too)."""
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"sdist": next(out.glob("chainfuzz-*.tar.gz")), "wheel": next(out.glob("chainfuzz-*.whl"))}


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel and pytest; returns its bin folder."""
    where = tmp_path_factory.mktemp("venv")
    assert _run([sys.executable, "-m", "venv", where], cwd=where).returncode == 0
    bin_dir = where / "bin"
    proc = _run([bin_dir / "python", "-m", "pip", "install", "-q", f"{dists['wheel']}[test]"], cwd=where)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return bin_dir


@pytest.fixture
def empty(tmp_path) -> Path:
    """An empty working folder: nothing of the source tree can be found from it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_the_wheel_holds_every_package_the_seeds_and_the_plugin(dists):
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    packages = {str(p.parent.relative_to(SRC)) for p in SRC.rglob("*.py") if "__pycache__" not in p.parts}
    in_wheel = {n.rsplit("/", 1)[0] for n in names if n.endswith(".py")}
    assert packages <= in_wheel
    assert "_chainfuzz_pytestplugin/__init__.py" in names
    seeds = [p.relative_to(SRC).as_posix() for p in (SRC / "chainfuzz" / "fuzz" / "seeds").rglob("*") if p.is_file()]
    assert seeds and set(seeds) <= set(names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(dists["wheel"]).read(entry_points).decode()
    assert "chainfuzz = _chainfuzz_pytestplugin" in text and "chainfuzz = chainfuzz.cli:main" in text


def test_the_sdist_holds_the_sources_and_the_seeds(dists):
    with tarfile.open(dists["sdist"]) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "src/_chainfuzz_pytestplugin/__init__.py",
            "src/chainfuzz/properties/template.py", "src/chainfuzz/fuzz/seeds/template"} <= names


def test_installed_chainfuzz_comes_from_the_venv_not_the_source_tree(venv, empty):
    proc = _run([venv / "python", "-c", "import chainfuzz; print(chainfuzz.__file__)"], cwd=empty)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(venv.parent) and not Path(proc.stdout.strip()).is_relative_to(ROOT)


def test_properties_lists_the_built_in_properties(venv, empty):
    proc = _run([venv / "chainfuzz", "properties"], cwd=empty)
    assert proc.returncode == 0, proc.stderr
    for prop in ("template.renders", "tokenizer.roundtrip", "chain.single_bos", "engine.batch_invariant"):
        assert prop in proc.stdout


def test_check_writes_a_case_that_replay_and_pytest_replay(venv, empty, sources):
    """check finds the planted crash (exit 1) and writes its case; replay says it still fails;
    the installed pytest plugin collects the case as an expected failure."""
    (empty / "nullcrash.jinja").write_text(sources.null_crash, encoding="utf-8")
    proc = _run([venv / "chainfuzz", "check", "nullcrash.jinja", "--property", "template.renders",
                 "--seed", "1", "--max-examples", "30", "--crashes", "crashes"], cwd=empty)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = list((empty / "crashes").glob("template.renders--nullcrash.jinja--*.json"))
    assert len(found) == 1
    assert json.loads(found[0].read_text(encoding="utf-8"))["versions"]["chainfuzz"] == "0.1.0"
    proc = _run([venv / "chainfuzz", "replay", "crashes"], cwd=empty)
    assert proc.returncode == 1 and "fails" in proc.stdout, proc.stdout + proc.stderr
    proc = _run([venv / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "crashes"], cwd=empty)
    assert proc.returncode == 0 and "1 xfailed" in proc.stdout, proc.stdout + proc.stderr


def test_a_seed_searches_the_same_from_the_wheel_as_from_the_checkout(venv, empty, sources):
    """The same ``--seed`` draws the same inputs whether chainfuzz runs from site-packages or
    from this checkout (Hypothesis would otherwise mix the checkout's literals into generation)."""
    (empty / "chatml.jinja").write_text(sources.clean, encoding="utf-8")
    args = ["check", "chatml.jinja", "--seed", "3", "--max-examples", "40", "--property",
            "template.content_preserved", "template.prefix_stable", "template.roundtrip"]
    runs = {}
    for where, cmd in (("wheel", [venv / "chainfuzz"]), ("checkout", [sys.executable, "-m", "chainfuzz.cli"])):
        proc = _run([*cmd, *args, "--crashes", f"c-{where}", "--json", f"{where}.json"], cwd=empty,
                    env={"PYTHONPATH": str(SRC)} if where == "checkout" else None)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        doc = json.loads((empty / f"{where}.json").read_text(encoding="utf-8"))
        runs[where] = ({p: (s["examples"], s["skipped"]) for p, s in doc["stats"]["targets"]["chatml.jinja"].items()},
                       sorted(f["reproducer"]["signature"] for f in doc["failures"]))
    assert runs["wheel"] == runs["checkout"]


def test_every_module_imports(venv, empty):
    """Every module of the package imports without the source tree and without the optional
    extras (the worker scripts, run as programs, excepted)."""
    script = ("import importlib, pkgutil, chainfuzz\n"
              "bad = []\n"
              "for m in pkgutil.walk_packages(chainfuzz.__path__, 'chainfuzz.'):\n"
              "    if m.name.rsplit('.', 1)[-1].startswith('_'):\n"
              "        continue\n"
              "    try:\n"
              "        importlib.import_module(m.name)\n"
              "    except Exception as exc:\n"
              "        bad.append(f'{m.name}: {exc!r}')\n"
              "print('\\n'.join(bad) or 'ok')\n"
              "import _chainfuzz_pytestplugin\n"
              "print(sorted(chainfuzz.__all__) == sorted(n for n in chainfuzz.__all__ if getattr(chainfuzz, n, None) is not None))\n")
    proc = _run([venv / "python", "-c", script], cwd=empty)
    assert proc.stdout.split() == ["ok", "True"], proc.stdout + proc.stderr


def test_the_pytest_plugin_costs_a_project_that_does_not_use_it_nothing(venv, empty):
    """pytest starting in a project with chainfuzz installed imports neither transformers nor
    Hypothesis, and leaves os.environ as it found it; a JSON file that is not a case costs
    the standard-library sniff of `chainfuzz.casefile` and nothing more."""
    before = empty.parent / "environ.json"
    (empty / "data.json").write_text('{"not": "a case"}', encoding="utf-8")
    (empty / "test_plain.py").write_text(
        "import json, os, sys\n"
        "def test_plain(request):\n"
        "    assert request.config.pluginmanager.hasplugin('chainfuzz')\n"
        "    loaded = {m for m in sys.modules if m.split('.')[0] in ('chainfuzz', 'transformers', 'hypothesis')}\n"
        "    assert loaded <= {'chainfuzz', 'chainfuzz.casefile'}, loaded\n"
        f"    before = json.load(open({str(before)!r}))\n"
        "    now = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}\n"
        "    assert now == before\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    before.write_text(json.dumps({k: v for k, v in env.items() if not k.startswith("PYTEST_")}), encoding="utf-8")
    proc = subprocess.run([str(venv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"],
                          cwd=empty, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


PLUGIN = '''
import chainfuzz
from chainfuzz import strategies as cst


@chainfuzz.property("plugin.no_tabs", inputs=lambda ctx: cst.conversations(ctx.markers), severity="warning")
def no_tabs(ctx, case):
    """The template never writes a tab."""
    if "\\t" in ctx.render_or_skip(case["messages"], tools=case["tools"]):
        raise chainfuzz.Failure("a tab", key="tab")


class EchoEngine(chainfuzz.Engine):
    name = "echo"
'''

PLUGIN_PROJECT = """[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "cfplugin"
version = "1"

[tool.setuptools]
py-modules = ["cfplugin"]

[project.entry-points."chainfuzz.properties"]
mine = "cfplugin"

[project.entry-points."chainfuzz.engines"]
echo = "cfplugin:EchoEngine"
"""


def test_a_third_party_package_adds_properties_and_engines_through_entry_points(venv, tmp_path, empty):
    """An installed package's entry points add a property (`chainfuzz properties` lists it,
    `check` runs it) and an engine (the engine table names it), with no flag."""
    project = tmp_path / "plugin"
    project.mkdir()
    (project / "cfplugin.py").write_text(PLUGIN, encoding="utf-8")
    (project / "pyproject.toml").write_text(PLUGIN_PROJECT, encoding="utf-8")
    proc = _run([venv / "python", "-m", "pip", "install", "-q", "--no-deps", project], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        proc = _run([venv / "chainfuzz", "properties"], cwd=empty)
        assert proc.returncode == 0 and "plugin.no_tabs" in proc.stdout, proc.stdout + proc.stderr
        (empty / "tabs.jinja").write_text("{% for m in messages %}{{ m.role }}\t{{ m.content }}{% endfor %}",
                                          encoding="utf-8")
        proc = _run([venv / "chainfuzz", "check", "tabs.jinja", "--property", "plugin.no_tabs", "--seed", "1",
                     "--crashes", "c"], cwd=empty)
        assert proc.returncode == 0 and "1 warning(s)" in proc.stdout, proc.stdout + proc.stderr
        proc = _run([venv / "python", "-c", "from chainfuzz.engines import AVAILABLE_ENGINES as t;"
                     "print(t.names()[-1], t.load('echo').__name__)"], cwd=empty)
        assert proc.stdout.split() == ["echo", "EchoEngine"], proc.stdout + proc.stderr
    finally:
        _run([venv / "python", "-m", "pip", "uninstall", "-q", "-y", "cfplugin"], cwd=tmp_path)
    proc = _run([venv / "chainfuzz", "properties"], cwd=empty)
    assert "plugin.no_tabs" not in proc.stdout  # the clean twin: gone with the package


def test_the_wheel_installs_with_every_extra(dists, tmp_path):
    """``pip install 'chainfuzz[all]'``: torch's CPU build first, as `make test` does, then the
    wheel with every extra; llama.cpp's tokenizer then reads a GGUF from the installed package."""
    if shutil.which("cmake") is None:
        pytest.skip("llama-cpp-python builds from source: needs cmake")
    where = tmp_path / "venv-all"
    assert _run([sys.executable, "-m", "venv", where], cwd=tmp_path).returncode == 0
    pip = [where / "bin" / "python", "-m", "pip", "install", "-q"]
    proc = _run([*pip, "torch==2.13.0"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run([*pip, f"{dists['wheel']}[all]"], cwd=tmp_path, timeout=3000,
                env={"CMAKE_ARGS": "-DGGML_NATIVE=OFF"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = ("from chainfuzz import tokenization\n"
              "from chainfuzz.tokenization.base import TokenizerSource\n"
              "import sys\n"
              "loaded = tokenization.load(TokenizerSource('gguf', sys.argv[1], 'x'))\n"
              "print(' '.join(t.impl for t in loaded.impls), loaded.unavailable)\n")
    gguf = _vocab("qwen2")
    proc = _run([where / "bin" / "python", "-c", script, gguf], cwd=tmp_path)
    assert proc.stdout.strip() == "llama.cpp hf {}", proc.stdout + proc.stderr


def _vocab(name: str) -> Path:
    from chainfuzz import corpus

    return corpus.fetch("llama.cpp") / "vocab" / f"ggml-vocab-{name}.gguf"
