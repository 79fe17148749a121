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
import socket
import threading
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import UsageError
from .base import ChatResult, Completion, Engine, EngineCrash, EngineError, Unsupported

# The largest chosen-token logprob difference two runs that should agree may show, per flavour.
# Measured on the tiny model (concurrent requests against one alone, in other orders, cached
# against cold or salted prompts): vLLM bitwise; llama-cpp-python 1.4e-6 (its reuse of the
# previous request's prefix), so 1e-4 leaves room for other prompts and KV cache types.
# llama.cpp's own server was not measured here: the same as llama-cpp-python's engine.
TOLERANCE = {"vllm": 0.0, "llama-cpp-python": 1e-4, "llama.cpp": 1e-4, "http": 1e-3}

PROBE_TIMEOUT = 30.0


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
        if not data or not isinstance(data, list) or not isinstance(data[0], dict) or "id" not in data[0]:
            raise UsageError(f"--engine {self.url}: GET /models is not an OpenAI model list "
                             f"({json.dumps(answer)[:120]})")
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
            if answer and answer.get("choices"):
                choice = answer["choices"][0]
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
        choice = _choice(answer, self.name)
        tokens, logprobs = _logprobs(choice.get("logprobs"))
        if _int_list(choice.get("token_ids")) is not None:
            tokens = choice["token_ids"]
        return Completion(tokens=tokens, logprobs=logprobs, text=choice.get("text"))

    # -- text API -----------------------------------------------------------------------------
    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        if max_new_tokens <= 0:
            return ""
        # A plain request: vLLM checks no stop string before min_tokens, so no extras here.
        body = self._body(prompt, max_new_tokens, logprobs=False, stop=stop, extras=False)
        return _choice(self._post("/v1/completions", body), self.name).get("text") or ""

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        if max_new_tokens <= 0:
            return []
        body = self._body(prompt, max_new_tokens, logprobs=False, stop=stop, stream=True, extras=False)
        deltas = []
        where = "POST /v1/completions (stream)"
        try:
            with self._open("POST", f"{self.base}/v1/completions", body, self.timeout) as response:
                for raw in response:
                    line = raw.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        raise EngineCrash(f"{self.name}: {where}: an event that is not JSON: {data[:200]}") from None
                    if isinstance(event, dict) and "error" in event:
                        raise EngineCrash(f"{self.name}: {where}: error event: {_error_text(event)}")
                    for choice in event.get("choices") or []:
                        if choice.get("text"):
                            deltas.append(choice["text"])
                else:
                    raise EngineCrash(f"{self.name}: {where}: the stream ended without [DONE]")
        except _HTTPFailure as exc:
            raise self._crash(where, exc) from None
        except (OSError, http.client.HTTPException) as exc:
            raise EngineCrash(f"{self.name}: {where}: the stream broke: {_reason(exc)}") from None
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
        choice = _choice(answer, self.name)
        text = (choice.get("message") or {}).get("content")
        usage = answer.get("usage") or {}
        count = usage.get("prompt_tokens")
        return ChatResult(prompt_ids=ids, prompt_tokens=count if isinstance(count, int) else
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
            raise EngineCrash(f"{self.name}: POST {path}: the answer is not a JSON object")
        return answer

    def _crash(self, where: str, exc: _HTTPFailure) -> EngineError:
        if exc.status is None:
            return EngineCrash(f"{self.name}: {where}: no answer: {exc.message}")
        if exc.status >= 500:
            return EngineCrash(f"{self.name}: {where}: HTTP {exc.status} (server error): {exc.message}")
        return EngineError(f"{self.name}: {where}: HTTP {exc.status}, the server refuses the request: "
                           f"{exc.message}")

    def _open(self, method: str, url: str, body: dict | None, timeout: float):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json, text/event-stream"})
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", errors="replace")
            except (OSError, http.client.HTTPException):
                text = ""
            raise _HTTPFailure(exc.code, _error_text(text) or exc.reason or "") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _HTTPFailure(None, _reason(exc)) from None

    def _call(self, method: str, url: str, body: dict | None, timeout: float):
        with self._open(method, url, body, timeout) as response:
            try:
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise _HTTPFailure(None, f"the answer broke off: {_reason(exc)}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise _HTTPFailure(response.status, f"not JSON: {raw[:120]!r}") from None

    def close(self) -> None:
        self._tokenizer = None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
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
        except ValueError:
            return " ".join(answer.split())[:300]
    message = answer
    if isinstance(answer, dict):
        error = answer.get("error", answer.get("detail", answer))
        message = error.get("message", error) if isinstance(error, dict) else error
    text = message if isinstance(message, str) else json.dumps(message)
    return " ".join(text.split())[:300]


def _int_list(value) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def _choice(answer: dict, name: str) -> dict:
    choices = answer.get("choices")
    if not choices or not isinstance(choices[0], dict):
        raise EngineCrash(f"{name}: an answer without choices: {json.dumps(answer)[:200]}")
    return choices[0]


def _logprobs(block) -> tuple[list, list[float]]:
    """Token strings and chosen-token logprobs from either OpenAI logprobs format: the legacy
    completions one (``tokens``, ``token_logprobs``) or the chat one (``content``)."""
    if not isinstance(block, dict):
        return [], []
    if isinstance(block.get("content"), list):
        entries = [e for e in block["content"] if isinstance(e, dict)]
        ids = [e.get("id") for e in entries]
        tokens = ids if _int_list(ids) is not None else [e.get("token") for e in entries]
        return tokens, [float(e["logprob"]) if e.get("logprob") is not None else float("nan") for e in entries]
    tokens = block.get("tokens") or []
    logprobs = [float(v) if v is not None else float("nan") for v in block.get("token_logprobs") or []]
    return list(tokens), logprobs
