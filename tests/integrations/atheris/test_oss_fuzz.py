"""Crash mode and the OSS-Fuzz / ClusterFuzzLite build files: the harness scripts run as those
builds run them (libFuzzer's flags, ``-artifact_prefix``, a corpus folder, a crash file to
reproduce, the wrapper build.sh compiles), a planted defect crashes with its property's own
exception type from frames of its own, a clean template does not crash."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chainfuzz.fuzz.harness import HARNESSES
from chainfuzz.fuzz.launch import SEEDS

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "fuzz" / "fuzz_template.py"
WRAPPER = ROOT / "oss-fuzz" / "chainfuzz_fuzzer.py"
MARKER = "=== Uncaught Python exception: ==="


def _run(argv: list, cwd: Path, **env) -> subprocess.CompletedProcess:
    """The script's run, its output in ``.out`` (atheris prints the exception on stdout,
    libFuzzer its lines on stderr)."""
    proc = subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120, env={**os.environ, **env})
    proc.out = proc.stdout
    return proc


def _crash(err: str) -> tuple[str, list[str]]:
    """The exception type and the traceback's function names, outermost first, as atheris
    prints them after its marker (what ClusterFuzz's stack analyzer reads)."""
    assert MARKER in err, err[-3000:]
    text = err.split(MARKER, 1)[1]
    exc_type = re.search(r"^(\w+): ", text, re.MULTILINE).group(1)
    frames = re.findall(r'^\s*File "[^"]+", line \d+, in (.+)$', text.split("ERROR: libFuzzer")[0],
                        re.MULTILINE)
    return exc_type, frames


def _wrapper(folder: Path, name: str, target: Path) -> Path:
    """build.sh's fuzzer before PyInstaller: the wrapper named fuzz_<harness>_<name>.py, its
    target alone in chainfuzz_target/ beside it."""
    (folder / "chainfuzz_target").mkdir(parents=True)
    (folder / "chainfuzz_target" / target.name).write_bytes(target.read_bytes())
    script = folder / f"{name}.py"
    script.write_bytes(WRAPPER.read_bytes())
    return script


@pytest.fixture(scope="module")
def planted(tmp_path_factory, sources):
    """One crash-mode run of fuzz_template.py on the planted null-content crash, from the seeds."""
    tmp = tmp_path_factory.mktemp("planted")
    tpl = tmp / "nullcrash.jinja"
    tpl.write_text(sources.null_crash, encoding="utf-8")
    (tmp / "work").mkdir()
    (tmp / "art").mkdir()
    proc = _run([SCRIPT, tpl, "--crashes", "found", "-seed=1", "-max_total_time=15",
                 "-artifact_prefix=art/", "work", SEEDS / "template"], tmp, CHAINFUZZ_CRASH="1")
    return tmp, tpl, proc


def test_crash_mode_stops_on_a_new_defect_with_its_propertys_type(planted):
    tmp, _, proc = planted
    assert proc.returncode != 0, proc.out[-3000:]
    [artifact] = (tmp / "art").glob("crash-*")
    assert artifact.stat().st_size > 0
    exc_type, frames = _crash(proc.out)
    assert exc_type == "TemplateRendersFailed"
    assert frames[-2] == "property_template_renders" and frames[-1].startswith("defect_")
    # recorded before it was raised: nothing is lost
    assert len(list((tmp / "found").glob("template.renders--nullcrash.jinja--*.json"))) == 1


def test_the_crash_file_reproduces_even_with_the_case_recorded(planted):
    tmp, tpl, proc = planted
    [artifact] = (tmp / "art").glob("crash-*")
    again = _run([SCRIPT, tpl, "--crash", "--crashes", "found", artifact], tmp)
    assert again.returncode != 0, again.out[-3000:]
    assert "Running 1 inputs 1 time(s) each" in again.out
    assert _crash(again.out) == _crash(proc.out)  # same type, same frames: one defect
    # without crash mode the harness is as before: recorded, carried on, status 0
    quiet = _run([SCRIPT, tpl, "--crashes", "found", artifact], tmp)
    assert quiet.returncode == 0, quiet.out[-3000:]
    assert MARKER not in quiet.out


def test_two_properties_crash_with_different_types_and_frames(planted, tmp_path):
    """turns_closed's planted defect, through the OSS-Fuzz wrapper, run on the seed files."""
    script = _wrapper(tmp_path / "build", "fuzz_template_turns",
                      ROOT / "tests" / "templates" / "turns_closed_defect.jinja")
    proc = _run([script, "-artifact_prefix=./", *sorted((SEEDS / "template").iterdir())], tmp_path)
    assert proc.returncode != 0, proc.out[-3000:]
    turns_type, turns_frames = _crash(proc.out)
    renders_type, renders_frames = _crash(planted[2].out)
    assert turns_type == "TemplateTurnsClosedFailed" != renders_type
    assert turns_frames[-2] == "property_template_turns_closed"
    # ClusterFuzz's crash state is the three innermost frames' function names
    assert turns_frames[-1] != renders_frames[-1] and turns_frames[-3:] != renders_frames[-3:]
    assert not list((tmp_path / "build").glob("*.json"))  # the wrapper records no case files


def test_clean_template_runs_its_runs_through_the_wrapper(sources, tmp_path):
    tpl = tmp_path / "chatml.jinja"
    tpl.write_text(sources.clean, encoding="utf-8")
    script = _wrapper(tmp_path / "build", "fuzz_template_chatml", tpl)
    (tmp_path / "work").mkdir()
    proc = _run([script, "-runs=300", "-seed=1", "-artifact_prefix=art-", "work",
                 SEEDS / "template"], tmp_path)
    assert proc.returncode == 0, proc.out[-3000:]
    assert re.search(r"^Done 300 runs", proc.out, re.MULTILINE)
    assert MARKER not in proc.out
    assert not list(tmp_path.glob("art-*")) and not list(tmp_path.rglob("crash-*"))


def test_chainfuzz_fuzz_never_runs_crash_mode(cli, write_template, sources, tmp_path, monkeypatch):
    """$CHAINFUZZ_CRASH is for the OSS-Fuzz fuzzers: `chainfuzz fuzz` still records and goes on."""
    monkeypatch.setenv("CHAINFUZZ_CRASH", "1")
    tpl = write_template("nullcrash.jinja", sources.null_crash)
    r = cli("fuzz", tpl, "--harness", "template", "--budget", 20, "--crashes", tmp_path / "c",
            "--seed", 1)
    assert r.rc == 1, r.out + r.err
    assert "Traceback" not in r.err and "Failed" not in r.out + r.err
    assert len(list((tmp_path / "c").glob("template.renders--nullcrash.jinja--*.json"))) == 1


# --- the build files --------------------------------------------------------------------------

BUILD = ROOT / "oss-fuzz" / "build.sh"


def _fuzzers() -> list[tuple[str, str, str]]:
    """build.sh's FUZZERS rows: harness, fuzzer name, target file under the corpus root."""
    block = re.search(r"^FUZZERS=\((.*?)^\)", BUILD.read_text(encoding="utf-8"), re.M | re.S).group(1)
    return [tuple(row.split()) for row in re.findall(r'"([^"]+)"', block)]


@pytest.mark.parametrize("script", [BUILD, ROOT / ".clusterfuzzlite" / "build.sh"])
def test_build_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.out


def test_build_script_compiles_what_exists():
    text = BUILD.read_text(encoding="utf-8")
    assert "compile_python_fuzzer" in text and "oss-fuzz/chainfuzz_fuzzer.py" in text
    assert WRAPPER.is_file()
    assert "oss-fuzz/build.sh" in (ROOT / ".clusterfuzzlite" / "build.sh").read_text(encoding="utf-8")
    rows = _fuzzers()
    assert {h for h, _, _ in rows} == set(HARNESSES)
    for harness, name, target in rows:
        assert re.fullmatch(r"[a-z0-9_]+", name) and "_" not in harness  # the wrapper splits on "_"
        assert list((SEEDS / harness).iterdir()), harness
        assert target.startswith(("templates/", "vocab/"))
    cache = Path(os.environ.get("CHAINFUZZ_CACHE") or Path.home() / ".cache" / "chainfuzz")
    root = cache / "llama-cpp-python-0.3.36"  # corpus.CORPORA["llama.cpp"], if fetched here
    if root.is_dir():
        assert [t for _, _, t in rows if not (root / t).is_file()] == []


def test_dockerfiles_name_the_python_builder():
    for path in (ROOT / "oss-fuzz" / "Dockerfile", ROOT / ".clusterfuzzlite" / "Dockerfile"):
        [base] = re.findall(r"^FROM\s+(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        assert base == "gcr.io/oss-fuzz-base/base-builder-python", path


def test_yaml_files_parse_and_say_python():
    yaml = pytest.importorskip("yaml")
    oss = yaml.safe_load((ROOT / "oss-fuzz" / "project.yaml").read_text(encoding="utf-8"))
    assert oss["language"] == "python" and oss["fuzzing_engines"] == ["libfuzzer"]
    assert oss["sanitizers"] == ["address", "undefined"] and oss["main_repo"]
    assert yaml.safe_load((ROOT / ".clusterfuzzlite" / "project.yaml").read_text())["language"] == "python"
    modes = {}
    for name in ("cflite_pr.yml", "cflite_batch.yml"):
        flow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
        [job] = flow["jobs"].values()
        steps = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"]}
        assert steps["google/clusterfuzzlite/actions/build_fuzzers"]["language"] == "python"
        modes[name] = steps["google/clusterfuzzlite/actions/run_fuzzers"]["mode"]
    assert modes == {"cflite_pr.yml": "code-change", "cflite_batch.yml": "batch"}
