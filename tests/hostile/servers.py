"""Misbehaving OpenAI-compatible servers for the hostile corpus: real HTTP servers on
127.0.0.1 (standard library only), each answering like llama-cpp-python's server until one
chosen request, which gets one hostile answer.

``with openai_server(tiny, hostile=BEHAVIOUR, on=ROUTE) as url:`` serves the model folder
``tiny`` at ``url`` (``http://127.0.0.1:PORT/v1``). The well-behaved answers are real enough
for chainfuzz's engine to accept and run properties on: ``/extras/tokenize`` tokenizes with the
folder's own ``tokenizer.json``, completions are a fixed text cut at the first stop string,
and a stream sends that text in pieces and ``[DONE]``. ``on`` names where the hostile answer
goes: ``"stream"`` (streamed completions), ``"completion"`` (non-streamed completions other
than chainfuzz's start-up probe), ``"chat"``, ``"models"`` or ``"probe"`` (the start-up
completion probe, ``max_tokens`` 2).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

TEXT = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox."
TRICKLE_SECONDS = 5.0  # between two bytes of a trickling answer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return {}

    def _send(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode("utf-8"))

    def _route(self, body: dict) -> str | None:
        path = self.path
        if path.endswith("/models"):
            return "models"
        if path == "/v1/chat/completions":
            return "chat"
        if path == "/v1/completions":
            if body.get("stream"):
                return "stream"
            return "probe" if body.get("max_tokens") == 2 else "completion"
        return None

    # -- requests ---------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._answer({})

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self._body())

    def _answer(self, body: dict) -> None:
        route = self._route(body)
        if route is not None and route == self.server.on:
            self.server.hits += 1
            self.close_connection = True
            try:
                self.server.hostile(self, body)
            except OSError:  # the client hung up: what it should do
                pass
            return
        if route == "models":
            return self._json({"object": "list", "data": [{"id": "tiny", "object": "model"}]})
        if self.path == "/extras/tokenize":
            ids = self.server.tokenizer.encode(str(body.get("input", "")), add_special_tokens=False).ids
            return self._json({"tokens": ids})
        if route in ("probe", "completion"):
            text = _cut(TEXT, body.get("stop") or [])
            return self._json({"object": "text_completion", "model": "tiny",
                               "choices": [{"index": 0, "text": text, "logprobs": None,
                                            "finish_reason": "length"}]})
        if route == "stream":
            return self._stream(_pieces(_cut(TEXT, body.get("stop") or [])), done=True)
        if route == "chat":
            return self._json({"choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}}],
                               "usage": {"prompt_tokens": 1}})
        self._json({"error": {"message": "not found"}}, status=404)

    def _stream(self, pieces, *, done: bool) -> None:
        """Server-sent events, one per piece of text (an iterable: it may be endless)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for piece in pieces:
            event = {"object": "text_completion", "choices": [{"index": 0, "text": piece}]}
            self.wfile.write(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")


def _cut(text: str, stop: list) -> str:
    cuts = [i for i in (text.find(s) for s in stop if isinstance(s, str) and s) if i >= 0]
    return text[:min(cuts)] if cuts else text


def _pieces(text: str) -> list[str]:
    return [text[i:i + 5] for i in range(0, len(text), 5)]


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, hostile: Callable, on: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokenizer = _tokenizer(str(Path(folder) / "tokenizer.json"))
        self.hostile, self.on = hostile, on
        self.hits = 0  # hostile answers begun
        self.stopping = threading.Event()


@contextlib.contextmanager
def openai_server(folder: Path, *, hostile: Callable | None = None, on: str = "stream") -> Iterator[str]:
    """A server on 127.0.0.1 for the model ``folder`` whose ``on`` requests get ``hostile``
    (one of the behaviours below, or None: a well-behaved server); yields its ``/v1`` URL.
    The URL has a ``server`` attribute: the running `_Server` (``hits`` counts hostile answers)."""
    server = _Server(folder, hostile or (lambda h, body: None), on if hostile else "")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = _URL(f"http://127.0.0.1:{server.server_address[1]}/v1")
    url.server = server
    try:
        yield url
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


class _URL(str):
    server: _Server


# --- hostile behaviours: fn(handler, request_body) -------------------------------------------

def endless_body(h: _Handler, body: dict) -> None:
    """200, no Content-Length, and JSON-looking bytes for ever."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b'{"choices": [{"text": "')
    block = b"A" * 65536
    while not h.server.stopping.is_set():
        h.wfile.write(block)


def trickle(h: _Handler, body: dict) -> None:
    """A whole, valid answer, one byte every `TRICKLE_SECONDS`, status line included."""
    payload = json.dumps({"choices": [{"text": TEXT}]}).encode("utf-8")
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    for i in range(len(answer)):
        h.wfile.write(answer[i:i + 1])
        h.wfile.flush()
        if h.server.stopping.wait(TRICKLE_SECONDS):
            return


def endless_events(h: _Handler, body: dict) -> None:
    """An event stream that never sends [DONE]: text events for ever."""
    def forever():
        while not h.server.stopping.is_set():
            yield "more "

    h._stream(forever(), done=False)


def silent_after_events(h: _Handler, body: dict) -> None:
    """A few events, then nothing (no [DONE], the connection held open)."""
    h._stream(_pieces(TEXT)[:3], done=False)
    h.wfile.flush()
    h.server.stopping.wait(600)


def answer(payload: bytes, status: int = 200) -> Callable:
    """A behaviour that answers ``payload`` (raw bytes) with ``status``."""
    def send(h: _Handler, body: dict) -> None:
        h._send(status, payload)

    return send


# Answers of the wrong shape, each a whole and well-framed HTTP answer.
MALFORMED = {
    "choices-object": b'{"choices": {}}',
    "null": b"null",
    "list": b"[1, 2, 3]",
    "no-choices": b'{"id": "x", "object": "text_completion"}',
    "choice-null": b'{"choices": [null]}',
    "text-number": b'{"choices": [{"text": 5}]}',
    "message-list": b'{"choices": [{"message": [], "text": null}]}',
    "logprobs-tokens-number": b'{"choices": [{"text": "x", "logprobs": {"tokens": 3, "token_logprobs": 1}}]}',
    "logprob-string": b'{"choices": [{"text": "x", "logprobs": {"tokens": ["x"], "token_logprobs": ["a"]}}]}',
    "token-ids-strings": b'{"choices": [{"text": "x", "token_ids": ["a"]}]}',
    "not-utf8": b'{"choices": [{"text": "\xff\xfe\xc3("}]}',
    "nested-3000": b"[" * 3000 + b"]" * 3000,
    "huge-int": b'{"choices": [{"text": "x"}], "n": ' + b"9" * 5000 + b"}",
    "not-json": b"<html>\x1b[2J all checks passed</html>",
    "truncated": b'{"choices": [{"text": "x"',
}
