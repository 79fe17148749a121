"""Any OpenAI-compatible server as an engine: ``--engine http://127.0.0.1:PORT/v1``.

What a server offers is found by probing its real endpoints at construction, never guessed
from its name:

* vLLM (``POST /tokenize`` accepts ``messages``): prompts as ids, ``return_token_ids``,
  ``ignore_eos``; an uncached request carries a fresh ``cache_salt``; ``POST
  /reset_prefix_cache`` clears the cache (it exists when the server runs with
  ``VLLM_SERVER_DEV_MODE=1``); chat prompt ids from ``/tokenize`` with the server's template.
* llama.cpp's own server (``/apply-template``, ``/tokenize``, ``/detokenize``): prompts as ids,
  ``cache_prompt: false`` per request, slots erased to clear the cache; chat prompt ids from
  ``/apply-template`` then ``/tokenize``.
* llama-cpp-python's server (``/extras/tokenize``, ``/extras/detokenize``): prompts as text
  only. The ids are decoded with the model folder's tokenizer and sent only if the server's
  own tokenizer gives the same ids back; tokens are the logprobs' token strings. Its prompt
  reuse (the longest prefix shared with the previous request) is always on, with no
  per-request switch and no reset, so the prefix cache is `Unsupported`. Its chat path says
  only how many prompt tokens its template made.
* anything else: text prompts need the model's tokenizer too, so only the chat path is used.

Requests are stdlib HTTP; ``generate`` sends one request per prompt from its own thread, which
is how a server batches. A refused connection, a reset, a timeout or a 5xx is `EngineCrash`
and a 4xx is `EngineError` with the server's message: both are findings for that input, and
the run goes on.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from ..errors import UsageError
from ..internal import limits
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError, Unsupported

# The largest chosen-token logprob difference two runs that should agree may show, per flavour.
# Measured on the tiny model (concurrent requests against one alone, in other orders, cached
# against cold or salted prompts): vLLM bitwise; llama-cpp-python 1.4e-6 (its reuse of the
# previous request's prefix), so 1e-4 leaves room for other prompts and KV cache types.
# llama.cpp's own server was not measured here: the same as llama-cpp-python's engine.
TOLERANCE = {"vllm": 0.0, "llama-cpp-python": 1e-4, "llama.cpp": 1e-4, "http": 1e-3}

PROBE_TIMEOUT = 30.0

# Measured on the tiny model through llama-cpp-python's server: a completion of 24 tokens with
# logprobs is 2.0 KB, its stream 5.4 KB in 26 events (one per token, a first and [DONE]), a
# /tokenize of 400 ids 1.8 KB, GET /models 144 bytes. A body or stream over 8 MiB (4000x) is
# a server gone wrong, not an answer; so is a stream of more than `_max_events` events.
MAX_BODY = 8 << 20
READ_CHUNK = 64 << 10


def _max_events(max_new_tokens: int) -> int:
    """The most events a stream of ``max_new_tokens`` tokens may send: one per token measured
    (plus a first one and [DONE]); four per token and 16 more leave room for servers that
    send empty or split events."""
    return 4 * max_new_tokens + 16


class _HTTPFailure(Exception):
    """A request that got no usable answer: ``status`` is the HTTP status, None for no answer."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OpenAIEngine(Engine):
    """An OpenAI-compatible server at ``url`` (``http://HOST:PORT/v1``) that runs the model in
    ``folder``; the server is started and stopped by whoever owns it, not here."""

    @classmethod
    def from_spec(cls, spec: str, folder: Path) -> "OpenAIEngine":
        return cls(spec, folder)

    def versions(self) -> dict[str, str]:
        """The server's kind, as probed: its own version is not part of the OpenAI API."""
        return {"server": self.flavour}

    def __init__(self, url: str, folder: Path, *, timeout: float = 180.0) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--engine {url}: not an http:// URL")
        self.base = self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url
        self.folder = Path(folder)
        self.timeout = timeout
        self.name = "http"
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()
        self._text_ok: dict[tuple, str] = {}
        self.model = self._model_id()
        self.flavour = self._flavour()
        self.name = "http" if self.flavour == "http" else f"http({self.flavour})"
        self.tolerance = TOLERANCE[self.flavour]
        # llama-cpp-python applies repeat_penalty=1.1 by default even at temperature 0, so its
        # "greedy" output differs from a real argmax once a token repeats; switch it off.
        self.greedy = {"temperature": 0}
        if self.flavour in ("llama-cpp-python", "llama.cpp"):
            self.greedy["repeat_penalty"] = 1.0
        self.ids_prompt, self.token_ids, self.extras = self._completion_features()

    # -- probing ------------------------------------------------------------------------------
    def _model_id(self) -> str:
        try:
            answer = self._call("GET", f"{self.url}/models", None, PROBE_TIMEOUT)
        except _HTTPFailure as exc:
            hint = "" if self.url.endswith("/v1") else " (the base URL usually ends in /v1)"
            raise UsageError(f"--engine {self.url}: no OpenAI-compatible server answers "
                             f"GET /models: {exc.message}{hint}") from None
        data = answer.get("data") if isinstance(answer, dict) else None
        if (not data or not isinstance(data, list) or not isinstance(data[0], dict)
                or not isinstance(data[0].get("id"), str)):
            raise UsageError(f"--engine {self.url}: GET /models is not an OpenAI model list "
                             f"({_kind(answer)}{'' if data is None else ', data: ' + _kind(data)})")
        return data[0]["id"]

    def _probe(self, path: str, body: dict) -> dict | None:
        """The answer of ``POST base+path``, or None where the server has no such endpoint or
        refuses the probe."""
        try:
            answer = self._call("POST", self.base + path, body, PROBE_TIMEOUT)
        except _HTTPFailure as exc:
            if exc.status is None:
                raise UsageError(f"--engine {self.url}: the server stopped answering: {exc.message}") from None
            return None
        return answer if isinstance(answer, dict) else None

    def _flavour(self) -> str:
        hello = [{"role": "user", "content": "Hello"}]
        answer = self._probe("/tokenize", {"model": self.model, "messages": hello, "add_generation_prompt": True})
        if answer and _int_list(answer.get("tokens")) and "count" in answer:
            return "vllm"
        answer = self._probe("/apply-template", {"messages": hello})
        if answer and isinstance(answer.get("prompt"), str) and self._probe("/detokenize", {"tokens": []}) is not None:
            return "llama.cpp"
        answer = self._probe("/extras/tokenize", {"input": "Hello"})
        if answer and _int_list(answer.get("tokens")) is not None:
            return "llama-cpp-python"
        return "http"

    def _completion_features(self) -> tuple[bool, bool, dict]:
        """Whether completions take ids as the prompt and return the new ids, and the extra
        fields that keep EOS from ending a completion early which the server accepts
        (``min_tokens`` is set to the request's ``max_tokens``)."""
        if self.flavour in ("llama-cpp-python", "http"):
            probe_prompt: list | str = "Hello"
        else:
            probe_prompt = self._server_tokens("Hello") or [0]
        wanted = {"vllm": {"ignore_eos": True, "min_tokens": None, "return_token_ids": True},
                  "llama.cpp": {"ignore_eos": True}, "llama-cpp-python": {"min_tokens": None},
                  "http": {"min_tokens": None}}[self.flavour]
        for extras in (wanted, {}):
            body = {"model": self.model, "prompt": probe_prompt, "max_tokens": 2, **self.greedy,
                    **{k: 2 if k == "min_tokens" else v for k, v in extras.items()}}
            answer = self._probe("/v1/completions", body)
            if answer and answer.get("choices") is not None:  # malformed: bad input, said here
                choice = _choice(answer, self.name, "POST /v1/completions")
                returns_ids = _int_list(choice.get("token_ids")) is not None
                return isinstance(probe_prompt, list), returns_ids, extras
        if self.flavour in ("vllm", "llama.cpp"):
            raise UsageError(f"--engine {self.url}: POST /v1/completions refuses a prompt of token ids")
        return False, False, {}

    def _server_tokens(self, text: str) -> list[int] | None:
        if self.flavour == "vllm":
            answer = self._probe("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": False})
        elif self.flavour == "llama.cpp":
            answer = self._probe("/tokenize", {"content": text})
        else:
            answer = self._probe("/extras/tokenize", {"input": text})
        return _int_list(answer.get("tokens")) if answer else None

    # -- generation ---------------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        if max_new_tokens <= 0:  # llama-cpp-python reads max_tokens 0 as "until the context is full"
            return [Completion(tokens=[], text="") for _ in prompts]
        if len(prompts) == 1:
            return [self._generate_one(prompts[0], max_new_tokens, cached=True)]
        with ThreadPoolExecutor(max_workers=min(len(prompts), 64)) as pool:
            futures = [pool.submit(self._generate_one, p, max_new_tokens, True) for p in prompts]
            return [f.result() for f in futures]

    def generate_uncached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        if self.flavour not in ("vllm", "llama.cpp"):
            raise Unsupported(self._no_cache_control())
        return self._generate_one(prompt, max_new_tokens, cached=False)

    def clear_prefix_cache(self) -> None:
        if self.flavour == "vllm":
            try:
                self._call("POST", f"{self.base}/reset_prefix_cache", None, self.timeout)
            except _HTTPFailure as exc:
                if exc.status in (404, 405):
                    raise Unsupported(f"{self.name} has no POST /reset_prefix_cache (start it with "
                                      "VLLM_SERVER_DEV_MODE=1)") from None
                raise self._crash("POST /reset_prefix_cache", exc) from None
        elif self.flavour == "llama.cpp":
            self._erase_slots()
        else:
            raise Unsupported(self._no_cache_control())

    def _no_cache_control(self) -> str:
        if self.flavour == "llama-cpp-python":
            return (f"{self.name} always reuses the longest prefix shared with the previous request; "
                    "it has no per-request switch and no way to clear it")
        return f"{self.name} offers no prefix cache control that chainfuzz knows"

    def _erase_slots(self) -> None:
        try:
            slots = self._call("GET", f"{self.base}/slots", None, self.timeout)
            for slot in slots:
                self._call("POST", f"{self.base}/slots/{slot['id']}?action=erase", {}, self.timeout)
        except _HTTPFailure as exc:
            if exc.status is None or exc.status >= 500:
                raise self._crash("/slots", exc) from None
            raise Unsupported(f"{self.name} cannot erase its slots ({exc.message[:100]}); "
                              "run it without --no-slots") from None
        except (TypeError, KeyError):
            raise Unsupported(f"{self.name}: GET /slots is not a list of slots") from None

    def _body(self, prompt: list[int], max_new_tokens: int, *, cached: bool = True, logprobs: bool = True,
              stop: list[str] | None = None, stream: bool = False, extras: bool = True) -> dict:
        body = {"model": self.model, "prompt": prompt if self.ids_prompt else self._text_of(prompt),
                "max_tokens": max_new_tokens, **self.greedy, "stream": stream}
        if logprobs:
            body["logprobs"] = 1
        if stop:
            body["stop"] = stop
        for key, value in self.extras.items() if extras else ():
            body[key] = max_new_tokens if key == "min_tokens" else value
        if not cached:
            if self.flavour == "vllm":
                body["cache_salt"] = uuid.uuid4().hex  # a salt no other request shares: no hits
            else:
                body["cache_prompt"] = False
        return body

    def _generate_one(self, prompt: list[int], max_new_tokens: int, cached: bool) -> Completion:
        if max_new_tokens <= 0:
            return Completion(tokens=[], text="")
        body = self._body(prompt, max_new_tokens, cached=cached)
        answer = self._post("/v1/completions", body)
        choice = _choice(answer, self.name, "POST /v1/completions")
        tokens, logprobs = _logprobs(choice.get("logprobs"), self.name, "POST /v1/completions")
        if _int_list(choice.get("token_ids")) is not None:
            tokens = choice["token_ids"]
        return Completion(tokens=tokens, logprobs=logprobs, text=choice.get("text"))

    # -- text API -----------------------------------------------------------------------------
    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        if max_new_tokens <= 0:
            return ""
        # A plain request: vLLM checks no stop string before min_tokens, so no extras here.
        body = self._body(prompt, max_new_tokens, logprobs=False, stop=stop, extras=False)
        return _choice(self._post("/v1/completions", body), self.name, "POST /v1/completions").get("text") or ""

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        if max_new_tokens <= 0:
            return []
        body = self._body(prompt, max_new_tokens, logprobs=False, stop=stop, stream=True, extras=False)
        deltas = []
        where = "POST /v1/completions (stream)"
        most = _max_events(max_new_tokens)
        events = 0
        try:
            with _Exchange("POST", f"{self.base}/v1/completions", body, self.timeout) as answer:
                for raw in answer.lines():
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    events += 1
                    if events > most:
                        raise EngineCrash(f"{self.name}: {where}: more than {most} events for "
                                          f"{max_new_tokens} tokens, and no [DONE]")
                    event = _json(data.encode("utf-8"), answer.status, what="an event")
                    if isinstance(event, dict) and "error" in event:
                        raise EngineCrash(f"{self.name}: {where}: error event: {_error_text(event)}")
                    for choice in _choices(event, self.name, where, allow_empty=True):
                        if choice.get("text"):
                            deltas.append(choice["text"])
                else:
                    raise EngineCrash(f"{self.name}: {where}: the stream ended without [DONE]")
        except _HTTPFailure as exc:
            raise self._crash(where, exc) from None
        return deltas

    # -- chat ---------------------------------------------------------------------------------
    def chat(self, messages: list[dict], tools: list | None, max_new_tokens: int) -> ChatResult:
        extra = {"tools": tools} if tools else {}
        ids = None
        if self.flavour == "vllm":
            answer = self._post("/tokenize", {"model": self.model, "messages": messages,
                                              "add_generation_prompt": True, **extra}, base=True)
            ids = _int_list(answer.get("tokens"))
        elif self.flavour == "llama.cpp":
            rendered = self._post("/apply-template", {"messages": messages, **extra}, base=True).get("prompt")
            if not isinstance(rendered, str):
                raise EngineCrash(f"{self.name}: POST /apply-template gave no prompt")
            answer = self._post("/tokenize", {"content": rendered, "add_special": True, "parse_special": True},
                                base=True)
            ids = _int_list(answer.get("tokens"))
        if ids is None and self.flavour in ("vllm", "llama.cpp"):
            raise EngineCrash(f"{self.name}: the server's tokenizer gave no token ids for the chat prompt")
        if max_new_tokens <= 0:
            if ids is None:
                raise Unsupported(f"{self.name} says nothing about a chat prompt without generating")
            return ChatResult(prompt_ids=ids, prompt_tokens=len(ids))
        body = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens, **self.greedy, **extra}
        answer = self._post("/v1/chat/completions", body)
        choice = _choice(answer, self.name, "POST /v1/chat/completions")
        text = (choice.get("message") or {}).get("content")
        count = _prompt_tokens(answer, self.name, "POST /v1/chat/completions")
        return ChatResult(prompt_ids=ids, prompt_tokens=count if count is not None else
                          (len(ids) if ids is not None else None), text=text)

    # -- text prompts (servers without id prompts) --------------------------------------------
    def _text_of(self, prompt: list[int]) -> str:
        """The text whose tokenization by the server is ``prompt``; `Unsupported` if none is
        found (not every id sequence is a tokenization of some text)."""
        key = tuple(prompt)
        if key in self._text_ok:
            return self._text_ok[key]
        text = self.tokenizer().decode(list(prompt), skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False)
        path = "/extras/tokenize" if self.flavour == "llama-cpp-python" else None
        if path is None:
            raise Unsupported(f"{self.name} takes text prompts and has no tokenizer endpoint to "
                              "check that the ids survive")
        back = _int_list(self._post(path, {"input": text}, base=True).get("tokens"))
        if back != list(prompt):
            raise Unsupported(f"{self.name} takes text prompts only, and its tokenizer does not turn "
                              "this prompt's text back into the same ids")
        self._text_ok[key] = text
        return text

    def tokenizer(self):
        """The model folder's own (transformers) tokenizer, loaded once."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
            return self._tokenizer

    # -- HTTP ---------------------------------------------------------------------------------
    def _post(self, path: str, body: dict, *, base: bool = False) -> dict:
        """``POST`` to the server (``path`` under the base URL); failures are `EngineCrash`."""
        try:
            answer = self._call("POST", self.base + path, body, self.timeout)
        except _HTTPFailure as exc:
            raise self._crash(f"POST {path}", exc) from None
        if not isinstance(answer, dict):
            raise _malformed(self.name, f"POST {path}", f"{_kind(answer)} instead of an object")
        return answer

    def _crash(self, where: str, exc: _HTTPFailure) -> EngineError:
        if exc.status is None:
            return EngineCrash(f"{self.name}: {where}: no answer: {exc.message}")
        if exc.status < 400:  # an answer that cannot be read
            return _malformed(self.name, where, exc.message)
        if exc.status >= 500:
            return EngineCrash(f"{self.name}: {where}: HTTP {exc.status} (server error): {exc.message}")
        return EngineError(f"{self.name}: {where}: HTTP {exc.status}, the server refuses the request: "
                           f"{exc.message}")

    def _call(self, method: str, url: str, body: dict | None, timeout: float):
        """The JSON answer of one request, read whole within ``timeout`` seconds."""
        with _Exchange(method, url, body, timeout) as answer:
            raw = answer.body()
        return _json(raw, answer.status)

    def close(self) -> None:
        self._tokenizer = None


class _Exchange:
    """One request and its answer under a total deadline: ``seconds`` (clipped to the budget's
    end, `limits.call_timeout`) for connecting, sending and every read together. A watchdog
    shuts the socket down at the deadline, so a server that trickles a byte at a time, in the
    headers or the body, cannot stretch a call past it; reads are capped at `MAX_BODY`."""

    def __init__(self, method: str, url: str, body: dict | None, seconds: float) -> None:
        self.seconds = limits.call_timeout(seconds)
        self.budget_cut = self.seconds < seconds  # its deadline is the budget's end
        self.deadline = time.monotonic() + self.seconds
        parts = urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = kind(parts.hostname, parts.port, timeout=self.seconds)
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.method = method
        self.data = None if body is None else json.dumps(body).encode("utf-8")
        self.expired = False
        self.status: int | None = None
        self.response: http.client.HTTPResponse | None = None
        self.read_bytes = 0
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self.conn.sock
        if sock is not None:
            try:  # the plain socket's shutdown: it wakes a reader blocked in recv, TLS or not
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "_Exchange":
        self._timer.start()
        try:
            self.conn.request(self.method, self.path, body=self.data,
                              headers={"Content-Type": "application/json",
                                       "Accept": "application/json, text/event-stream"})
            self.response = self.conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.__exit__(None, None, None)
            raise self._failure(exc) from None
        self.status = self.response.status
        if self.status >= 400:
            try:
                text = self.body().decode("utf-8", errors="replace")
            except _HTTPFailure:
                text = ""
            self.__exit__(None, None, None)
            raise _HTTPFailure(self.status, _error_text(text) or self.response.reason or "")
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        self.conn.close()

    def _failure(self, exc: BaseException | None) -> _HTTPFailure:
        """What a failed read or a passed deadline means; `BudgetExhausted` when the deadline
        was the budget's."""
        if self.expired or time.monotonic() >= self.deadline:
            if self.budget_cut or limits.out_of_budget():
                raise limits.BudgetExhausted()
            return _HTTPFailure(None, f"no whole answer within {self.seconds:g}s")
        if exc is None:
            return _HTTPFailure(None, "the answer broke off")
        return _HTTPFailure(None, f"the answer broke off: {_reason(exc)}" if self.response else _reason(exc))

    def _read(self) -> bytes:
        """The next bytes of the body, as they arrive; b"" at its end."""
        try:
            chunk = self.response.read1(READ_CHUNK)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self._failure(exc) from None
        if self.expired or time.monotonic() >= self.deadline:
            raise self._failure(None)
        self.read_bytes += len(chunk)
        if self.read_bytes > MAX_BODY:
            raise _HTTPFailure(self.status, f"more than {MAX_BODY} bytes")
        return chunk

    def body(self) -> bytes:
        """The whole body."""
        buf = bytearray()
        while chunk := self._read():
            buf += chunk
        return bytes(buf)

    def lines(self) -> Iterator[bytes]:
        """The body's lines as they arrive (an event stream's)."""
        buf = bytearray()
        while chunk := self._read():
            start = len(buf)
            buf += chunk
            cut = buf.rfind(b"\n", start)
            if cut >= 0:
                yield from bytes(buf[:cut]).split(b"\n")
                del buf[:cut + 1]
        if buf:
            yield bytes(buf)


def _json(raw: bytes, status: int | None, what: str = ""):
    """``raw`` parsed; not JSON (nor UTF-8, or nested past Python's recursion limit) is a
    failed request."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _HTTPFailure(status, f"{what + ' that is ' if what else ''}not JSON: {raw[:120]!r}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"


def _error_text(answer) -> str:
    """The message of an OpenAI-style error answer (or FastAPI's ``detail``), on one line."""
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except (ValueError, RecursionError):
            answer = answer[:300]
    message = answer
    if isinstance(answer, dict):
        error = answer.get("error", answer.get("detail", answer))
        message = error.get("message", error) if isinstance(error, dict) else error
    try:
        text = message if isinstance(message, str) else json.dumps(message)[:300]
    except (ValueError, RecursionError):
        text = _kind(message)
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in " ".join(text.split())[:300])


def _int_list(value) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


# -- answers: every shape a server's JSON is read with is checked here ----------------------

def _kind(value) -> str:
    """What a JSON value is, for a message (never the value itself: it may be huge or deep)."""
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return {bool: "a boolean", int: "an integer", float: "a number"}.get(type(value), "null")


def _malformed(name: str, where: str, what: str) -> EngineCrash:
    return EngineCrash(f"{name}: {where}: a malformed answer: {what}")


def _choices(answer, name: str, where: str, *, allow_empty: bool = False) -> list[dict]:
    """An answer's ``choices``, each field chainfuzz reads checked: ``text`` a string,
    ``message`` an object whose ``content`` is a string, ``token_ids`` integers, ``logprobs``
    an object (`_logprobs`), any of them null. Else `EngineCrash` (a finding for the input)."""
    if not isinstance(answer, dict):
        raise _malformed(name, where, f"{_kind(answer)} instead of an object")
    choices = answer.get("choices")
    if not isinstance(choices, list) or not (choices or allow_empty):
        raise _malformed(name, where, f"choices is {_kind(choices)}, not a list of choices")
    for choice in choices:
        if not isinstance(choice, dict):
            raise _malformed(name, where, f"a choice is {_kind(choice)}")
        message = choice.get("message")
        bad = [k for k, ok in (("text", _opt(choice.get("text"), str)),
                               ("message", _opt(message, dict)),
                               ("message.content", not isinstance(message, dict)
                                or _opt(message.get("content"), str)),
                               ("token_ids", choice.get("token_ids") is None
                                or _int_list(choice["token_ids"]) is not None),
                               ("logprobs", _opt(choice.get("logprobs"), dict))) if not ok]
        if bad:
            raise _malformed(name, where, f"the choice's {bad[0]} is {_kind(_dig(choice, bad[0]))}")
        _logprobs(choice.get("logprobs"), name, where)
    return choices


def _choice(answer, name: str, where: str) -> dict:
    return _choices(answer, name, where)[0]


def _prompt_tokens(answer: dict, name: str, where: str) -> int | None:
    usage = answer.get("usage")
    if usage is None:
        return None
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else usage
    if count is not None and not (isinstance(count, int) and not isinstance(count, bool)):
        raise _malformed(name, where, f"usage.prompt_tokens is {_kind(count)}")
    return count


def _opt(value, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _dig(value: dict, dotted: str):
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _number(value) -> float:
    """A logprob: a number, or null (nan)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a logprob is {_kind(value)}")
    return float(value)


def _logprobs(block, name: str, where: str) -> tuple[list, list[float]]:
    """Token strings and chosen-token logprobs from either OpenAI logprobs format: the legacy
    completions one (``tokens``, ``token_logprobs``) or the chat one (``content``)."""
    if not isinstance(block, dict):
        return [], []
    try:
        if isinstance(block.get("content"), list):
            entries = block["content"]
            if not all(isinstance(e, dict) for e in entries):
                raise TypeError("a logprobs.content entry is not an object")
            ids = [e.get("id") for e in entries]
            tokens = ids if _int_list(ids) is not None else [e.get("token") for e in entries]
            return tokens, [_number(e.get("logprob")) for e in entries]
        tokens, values = block.get("tokens") or [], block.get("token_logprobs") or []
        if not isinstance(tokens, list) or not isinstance(values, list):
            raise TypeError(f"logprobs.tokens is {_kind(tokens)}, token_logprobs {_kind(values)}")
        return tokens, [_number(v) for v in values]
    except TypeError as exc:
        raise _malformed(name, where, str(exc)) from None
