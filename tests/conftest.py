"""Shared fixtures: small templates written per test, and ways to run the ``chainfuzz`` CLI."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from programs import need_program

# A clean ChatML template: string, text-part and object contents, null assistant content,
# tool calls with object or string arguments, tools, and the generation prompt.
CLEAN_CHATML = r"""{%- macro text(c) -%}
{%- if c is string -%}{{ c }}{%- elif c is mapping -%}{{ c | tojson }}{%- elif c is not none -%}{%- for p in c -%}{%- if p.type == 'text' -%}{{ p.text }}{%- endif -%}{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- if tools -%}<|im_start|>system
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|im_end|>
{% endif -%}
{%- for m in messages -%}
<|im_start|>{{ m.role }}
{{ text(m.content) }}
{%- for c in m.tool_calls or [] %}<tool_call>{{ c.function.name }} {% if c.function.arguments is string %}{{ c.function.arguments }}{% else %}{{ c.function.arguments | tojson }}{% endif %}</tool_call>{% endfor %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
"""

# The clean template with one planted defect: `content + ''` raises TypeError on null content.
NULL_CRASH = CLEAN_CHATML.replace("{%- if c is string -%}{{ c }}",
                                  "{%- if c is string or c is none -%}{{ c + '' }}")
NULL_CRASH_KEY = "TypeError@line 2:unsupported operand type(s) for +: 'NoneType' and 'str'"

# The clean template refusing developer messages on purpose: a warning-tier finding only.
REFUSES_DEVELOPER = CLEAN_CHATML.replace(
    "{%- for m in messages -%}\n",
    "{%- for m in messages -%}\n{%- if m.role == 'developer' -%}"
    "{{ raise_exception('no developer messages') }}{%- endif -%}\n")

# Hangs on every non-empty conversation (and compiles at once: the loop is per message).
LOOPING = ("{%- for m in messages -%}{%- for i in range(100000) -%}{%- for j in range(100000) -%}"
           "{%- endfor -%}{%- endfor -%}{{ m.content }}{%- endfor -%}")

assert NULL_CRASH != CLEAN_CHATML and REFUSES_DEVELOPER != CLEAN_CHATML


@pytest.fixture(scope="session")
def sources():
    """The template sources above."""
    return types.SimpleNamespace(clean=CLEAN_CHATML, null_crash=NULL_CRASH,
                                 null_crash_key=NULL_CRASH_KEY,
                                 refuses_developer=REFUSES_DEVELOPER, looping=LOOPING)


@pytest.fixture
def write_template(tmp_path):
    """``write_template(name, source)`` writes ``tmp_path/name`` and returns its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return path

    return write


@dataclass
class CliResult:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run ``chainfuzz.cli.main(args)`` in-process; returns exit code, stdout and stderr."""
    from chainfuzz.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors exit
            rc = exc.code
        out, err = capsys.readouterr()
        return CliResult(rc, out, err)

    return run


@pytest.fixture
def cli_subprocess(tmp_path):
    """Run ``python -m chainfuzz.cli args`` in a fresh interpreter (cwd: ``tmp_path`` unless given)."""

    def run(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "chainfuzz.cli", *map(str, args)],
            cwd=cwd or tmp_path, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


def assert_one_error_line(result: CliResult) -> str:
    """Exit 2 with exactly one ``chainfuzz: error:`` line on stderr and no traceback."""
    assert "Traceback" not in result.err, result.err
    assert result.rc == 2, (result.rc, result.err)
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("chainfuzz: error: "), result.err
    return result.err_lines[0]


@pytest.fixture
def one_error_line():
    return assert_one_error_line


@pytest.fixture(scope="session")
def tiny():
    """The tiny Qwen2 model over the real qwen2 vocabulary, in the cache folder where
    ``chainfuzz model tiny`` puts it and the recorded engine cases in crashes/ find it."""
    pytest.importorskip("torch")
    from chainfuzz.engines.tiny import TinySpec, build, default_folder

    spec = TinySpec("qwen2")
    return build(spec, default_folder(spec))


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A real ``redis-server`` on 127.0.0.1 (a free port, nothing saved to disk, 64 dbs)
    answering PING: (its process, ``redis://127.0.0.1:PORT``). The caller stops it."""
    import socket

    import redis

    from chainfuzz.internal.limits import die_with_parent

    program = need_program("redis-server")
    with socket.socket() as s:  # a free port; the server binds it an instant later
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--databases", "64", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    for _ in range(200):  # 10 s at most; it answered within 60-130 ms here
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    else:
        proc.terminate()
        proc.wait()
        pytest.fail(f"redis-server on port {port} did not answer PING")
    client.close()
    if proc.poll() is not None:
        pytest.fail(f"redis-server on port {port} exited with {proc.returncode}")
    return proc, url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One ``redis-server`` for the session (`start_redis`): its URL, database 0."""
    pytest.importorskip("redis")
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield f"{url}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def own_redis_server(tmp_path):
    """A ``redis-server`` for this test alone (`start_redis`), which it may kill: (its process,
    the URL of its database 0)."""
    pytest.importorskip("redis")
    proc, url = start_redis(tmp_path)
    yield proc, f"{url}/0"
    proc.kill()
    proc.wait()


@pytest.fixture
def redis_db(redis_server):
    """``redis_db()``: the URL of a database of the session's server of its own, emptied; each
    call another, so that tests (and the two sides of one) do not see each other's keys."""
    import redis

    base = redis_server.rsplit("/", 1)[0]

    def fresh() -> str:
        url = f"{base}/{next(_REDIS_DBS) % 64}"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return url

    return fresh


_REDIS_DBS = itertools.count(1)  # the databases handed out by `redis_db`: 1, 2, ... (mod 64)
