"""Searches sharing one example database through a real redis-server on 127.0.0.1
(`memory.open_database` with a URL): a failure one worker finds is replayed and shrunk by the
others, findings merge into one crash folder, a bad URL is one clear error without its
password, and a server gone mid-search leaves the search running and the case file written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import strategies as st

from chainfuzz import cases, registry
from chainfuzz.context import Context
from chainfuzz.errors import UsageError
from chainfuzz.internal.limits import die_with_parent
from chainfuzz.internal.memory import Memory, open_database, safe_url, target_key
from chainfuzz.internal.runner import RunSettings, Search, run_searches
from chainfuzz.targets import load_targets

pytest.importorskip("redis")

WORKER = Path(__file__).with_name("search_worker.py")
CLEAN_CASE = {"messages": [{"role": "user", "content": "hello"}], "add_generation_prompt": True}


def _worker(template: Path, local: Path, redis_url: str, crashes: Path, mode: str) -> dict:
    """`search_worker.py` in a process of its own: what it found."""
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(WORKER), str(template), str(local), redis_url, str(crashes), mode],
                          capture_output=True, text=True, timeout=120, env=env, preexec_fn=die_with_parent)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.splitlines()[-1])
    assert found["internal_error"] is None
    return found


@pytest.mark.parametrize("shared", [True, False])
def test_a_failure_one_worker_finds_is_replayed_and_shrunk_by_another(shared, redis_db, write_template,
                                                                      sources, tmp_path):
    """Worker 1 finds the planted null crash and records it. Worker 2, started after with a
    folder of its own, can draw only a clean conversation: sharing worker 1's Redis database it
    replays the failure, shrinks it to a fixed point and records the same signature, which the
    crash folder already holds once; with a database of its own it finds nothing."""
    template = write_template("null_crash.jinja", sources.null_crash)
    crashes = tmp_path / "crashes"
    first_db = redis_db()
    first = _worker(template, tmp_path / "local1", first_db, crashes, "search")
    assert [f["key"] for f in first["findings"]] == [sources.null_crash_key]
    assert first["written"] == [True] and first["broken"] is None

    second = _worker(template, tmp_path / "local2", first_db if shared else redis_db(), crashes, "replay-only")
    assert second["broken"] is None
    if shared:
        (found,) = second["findings"]
        assert found["signature"] == first["findings"][0]["signature"]
        assert found["minimal"].startswith("a fixed point of the structural reducer (found without Hypothesis")
        assert second["written"] == [False]  # worker 1's case file stands
    else:
        assert second["findings"] == [] and second["given"] == 0
    (case_file,) = crashes.iterdir()
    assert first["findings"][0]["signature"] in case_file.name


def _replay_only_search(template: Path, database) -> tuple[Search, list]:
    """A search of template.renders that can draw only a clean conversation (no boundary
    cases): it finds a defect only through the failures its memory hands it."""
    prop = dataclasses.replace(registry.get("template.renders"), inputs=lambda ctx: st.just(CLEAN_CASE),
                               examples=None)
    (target,) = load_targets(template)
    ctx = Context(target)
    ctx.open({"template"})
    found: list = []
    search = Search([prop], ctx, RunSettings(max_examples=20, seed=1), found.append,
                    memory=Memory(database, target_key(target), [prop.id]))
    return search, found


def _null_reply(turns: int, text: str) -> dict:
    """A conversation of ``turns`` user/assistant pairs, the last reply's content null: it
    crashes the null_crash template."""
    messages = [m for i in range(turns) for m in ({"role": "user", "content": f"{text} {i}"},
                                                    {"role": "assistant", "content": f"{text} reply {i}"})]
    messages[-1]["content"] = None
    return {"messages": messages, "add_generation_prompt": False}


@pytest.mark.parametrize("saved", [True, False])
def test_a_search_replays_failures_another_worker_saved_after_it_started(saved, redis_db, write_template,
                                                                         sources, tmp_path):
    """Between its slices a search fetches the shared failures again: one saved by another
    worker since its first slice is replayed, shrunk and recorded; a second of the same defect
    is counted as known, not recorded again. Nothing saved: nothing found."""
    template = write_template("null_crash.jinja", sources.null_crash)
    url = redis_db()
    search, found = _replay_only_search(template, open_database(tmp_path / "mine", url))
    result = next(iter(search.results.values()))
    search.step(time.monotonic() + 30)
    assert found == []

    other = Memory(open_database(tmp_path / "other", url), target_key(search.ctx.target), [result.property.id])
    if saved:
        other.save_failure(result.property.id, _null_reply(3, "a longer text than needed"))
    search.step(time.monotonic() + 30)
    assert len(found) == int(saved) and result.given == int(saved)
    if saved:
        (finding,) = found
        assert finding.key == sources.null_crash_key
        assert len(finding.case["messages"]) < 6  # shrunk here
        other.save_failure(result.property.id, _null_reply(2, "another"))
        search.step(time.monotonic() + 30)
        assert len(found) == 1 and result.given == 2  # checked, and known
    assert search.memory.broken is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_redis_url_nothing_listens_on_is_a_usage_error_without_its_password(tmp_path, redis_db):
    port = _free_port()
    with pytest.raises(UsageError) as err:
        open_database(tmp_path, f"redis://:hunter2@127.0.0.1:{port}/0")
    message = str(err.value)
    assert f"redis://:***@127.0.0.1:{port}/0" in message and "hunter2" not in message
    assert "\n" not in message
    open_database(tmp_path, redis_db())  # the clean twin: a server that answers


@pytest.mark.parametrize("url", ["redis://127.0.0.1:port/0", "http://127.0.0.1/", "redis://[::1"])
def test_a_malformed_redis_url_is_a_usage_error(url, tmp_path):
    with pytest.raises(UsageError, match="is not a Redis URL"):
        open_database(tmp_path, url)


def test_without_the_redis_package_the_error_says_what_to_install(tmp_path, monkeypatch, redis_db):
    url = redis_db()
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` meets when it is not installed
    with pytest.raises(UsageError, match=r"pip install 'chainfuzz\[campaign\]'"):
        open_database(tmp_path, url)
    monkeypatch.undo()
    open_database(tmp_path, url)


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://user:hunter2@host:6379/0", "redis://user:***@host:6379/0"),
    ("redis://:hunter2@host", "redis://:***@host"),
    ("redis://hunter2@host/1", "redis://***@host/1"),
    ("rediss://host/0?db=1&password=hunter2", "rediss://host/0?db=1&password=***"),
    ("unix:///run/redis.sock?password=hunter2", "unix:///run/redis.sock?password=***"),
    ("redis://[::1:hunter2@", "redis://[:***@"),
    ("redis://host:6379/0", "redis://host:6379/0"),  # the clean twins: nothing to hide
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2"),
])
def test_safe_url_hides_the_password(url, shown):
    assert safe_url(url) == shown


@pytest.mark.parametrize("killed", [True, False])
def test_a_redis_server_gone_mid_search_leaves_the_search_running_and_the_case_file(killed, own_redis_server, tmp_path,
                                                                                    write_template, sources):
    """The server is killed as the first finding's case file is written: saving the failure
    then fails, the memory is marked broken and used no more, and the search ends normally
    with its finding. The twin keeps its server."""
    proc, url = own_redis_server
    template = write_template("null_crash.jinja", sources.null_crash)
    (target,) = load_targets(template)
    ctx = Context(target)
    ctx.open({"template"})
    prop = registry.get("template.renders")
    crashes = tmp_path / "crashes"

    def on_finding(finding) -> None:
        cases.write(cases.record(finding, ctx, crashes), crashes)
        if killed and proc.poll() is None:
            proc.kill()
            proc.wait()

    memory = Memory(open_database(tmp_path / "local", url), target_key(target), [prop.id])
    run = RunSettings(max_examples=20, seed=1)
    search = Search([prop], ctx, run, on_finding, memory=memory)
    run_searches([search], run)
    result = search.results[prop.id]
    assert [f.key for f in result.findings] == [sources.null_crash_key]
    assert result.internal_error is None
    assert len(list(crashes.iterdir())) == 1
    assert (memory.broken or "").startswith("ConnectionError") == killed
