"""The llama.cpp side of `LlamaCppEngine`: one f32 GGUF model in its own process.

llama.cpp aborts the whole process on some inputs, so it never runs in chainfuzz's process.
Protocol: one JSON request per line on stdin, one JSON reply per line on stdout. Run as
``python -m chainfuzz.engines._llama_engine_worker GGUF``.

Two contexts share the model's weights:

* the batch context (llama.cpp's low-level API): every prompt of a ``generate`` request in
  one multi-sequence ``llama_batch``, one sequence id per prompt, as llama-server's
  continuous batching decodes its slots; sequence 0's KV is the prefix cache of single-prompt
  requests (llama-server's ``cache_prompt``);
* llama-cpp-python's high-level ``Llama`` for ``create_completion`` and
  ``create_chat_completion``, untouched: its text path (stop strings, incremental UTF-8, its
  own prompt-prefix reuse, its Jinja2 chat formatter) is what is under test. Its KV cache is
  its own, so it never disturbs the batch context's prefix cache.
"""

from __future__ import annotations

import ctypes
import os
import sys

from chainfuzz.internal.worker import serve

N_CTX = 4096
N_UBATCH = 512  # llama-server's default physical batch
N_SEQ = 32  # most prompts one generate request may hold
# Fixed, so a configuration is bitwise repeatable; one, because ggml's threads spin on
# barriers: two on a busy 2-core machine decoded 10-20x slower than one.
THREADS = 1
SEED = 0


class Refused(Exception):
    """llama.cpp returned an error for the input (``llama_decode`` != 0) instead of aborting."""


def handler(path: str):
    """Load the model; the function that answers each request."""
    import llama_cpp

    session = LlamaSession(llama_cpp, path)

    def handle(req: dict) -> dict:
        try:
            return session.handle(req)
        except Refused as exc:
            return {"refused": str(exc)}
        except Exception as exc:  # noqa: BLE001 - reported to the engine, the worker lives on
            return {"error": f"{type(exc).__name__}: {exc}"}

    return handle


class LlamaSession:
    """The model loaded in llama-cpp-python, answering the engine's requests (in the worker process)."""

    def __init__(self, llama_cpp, path: str) -> None:
        import numpy as np

        self.ll, self.np = llama_cpp, np
        self.llm = llama_cpp.Llama(
            path, n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS, seed=SEED,
            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False,
            verbose=False,
        )
        _log_errors(llama_cpp)  # after Llama(): llama-cpp-python drops llama.cpp's errors
        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = self.llm.context_params  # a copy: F32 KV, threads, no FA
        params.n_batch = N_CTX  # every prompt of a request fits one llama_batch
        params.n_ubatch = N_UBATCH
        params.n_seq_max = N_SEQ
        params.kv_unified = True  # one KV buffer of N_CTX cells shared by the sequences
        self.ctx = llama_cpp.llama_init_from_model(self.llm._model.model, params)
        if self.ctx is None:
            raise RuntimeError("llama_init_from_model failed for the batch context")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = self.llm.n_vocab()
        self.cached: list[int] = []  # the tokens whose KV sequence 0 holds, from position 0

    def handle(self, req: dict) -> dict:
        op = req["op"]
        if op == "info":
            return {"n_vocab": self.n_vocab, "n_ctx": N_CTX, "n_seq": N_SEQ}
        if op == "generate":
            prompts, n = req["prompts"], req["n"]
            if len(prompts) == 1:
                return {"completions": [self.cached_one(prompts[0], n)]}
            return {"completions": self.uncached(prompts, n)}
        if op == "uncached":
            return {"completions": self.uncached([req["prompt"]], req["n"])}
        if op == "clear":
            self.forget()
            return {}
        if op == "complete":
            return {"text": self.text(req, stream=False)}
        if op == "stream":
            return {"deltas": self.text(req, stream=True)}
        if op == "chat":
            return self.chat(req["messages"], req.get("tools"), req["n"])
        raise ValueError(f"unknown op {op!r}")

    # -- the batch path -----------------------------------------------------------------------
    def forget(self) -> None:
        self.ll.llama_memory_clear(self.mem, True)
        self.cached = []

    def uncached(self, prompts: list[list[int]], n: int) -> list[dict]:
        """All prompts in one batch from an empty KV cache, which stays empty afterwards."""
        self.forget()
        try:
            return self.decode(prompts, [0] * len(prompts), n)
        finally:
            self.forget()

    def cached_one(self, prompt: list[int], n: int) -> dict:
        """One prompt on sequence 0, reusing the longest prefix its KV holds (at least the last
        prompt token is decoded again, for its logits), and keeping the KV for the next."""
        keep = 0
        for a, b in zip(self.cached, prompt[:-1]):
            if a != b:
                break
            keep += 1
        if keep == 0 or not self.ll.llama_memory_seq_rm(self.mem, 0, keep, -1):
            self.forget()
            keep = 0
        self.cached = []  # until this request has succeeded
        try:
            [done] = self.decode([prompt], [keep], n)
        except BaseException:
            self.forget()
            raise
        self.cached = list(prompt) + done["tokens"][:-1]  # the last new token is never decoded
        return done

    def decode(self, prompts: list[list[int]], starts: list[int], n: int) -> list[dict]:
        """Greedy decoding of ``prompts`` together, sequence i for prompt i, from position
        ``starts[i]`` (the KV before it already holds the prompt's prefix): one ``llama_batch``
        with every prompt's remaining tokens, then one per step with a token per sequence.
        Exactly ``n`` new tokens each; EOS does not stop a sequence."""
        ll, np = self.ll, self.np
        if len(prompts) > N_SEQ:
            raise ValueError(f"{len(prompts)} prompts in one request; the batch holds {N_SEQ}")
        if any(not p for p in prompts):
            raise ValueError("an empty prompt has no logits to continue from")
        need = sum(len(p) - s for p, s in zip(prompts, starts))
        if sum(map(len, prompts)) + len(prompts) * n > N_CTX:
            raise ValueError(f"{len(prompts)} prompts and {n} new tokens each exceed the "
                             f"context of {N_CTX} tokens")
        batch = ll.llama_batch_init(max(need, len(prompts)), 0, 1)
        try:
            rows = []  # the batch row whose logits continue each prompt
            i = 0
            for seq, (prompt, start) in enumerate(zip(prompts, starts)):
                for pos in range(start, len(prompt)):
                    _put(batch, i, prompt[pos], pos, seq, pos == len(prompt) - 1)
                    i += 1
                rows.append(i - 1)
            batch.n_tokens = i
            tokens = [[] for _ in prompts]
            logprobs = [[] for _ in prompts]
            for step in range(n):
                rc = ll.llama_decode(self.ctx, batch)
                if rc != 0:
                    raise Refused(f"llama_decode returned {rc}")
                for seq, row in enumerate(rows):
                    logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(self.ctx, row),
                                                   shape=(self.n_vocab,))
                    tok = int(np.argmax(logits))  # greedy: the first of equal maxima
                    wide = logits.astype(np.float64)
                    top = wide[tok]
                    logprobs[seq].append(float(-np.log(np.exp(wide - top).sum())))
                    tokens[seq].append(tok)
                if step == n - 1:
                    break
                for seq, prompt in enumerate(prompts):
                    _put(batch, seq, tokens[seq][-1], len(prompt) + step, seq, True)
                rows = list(range(len(prompts)))
                batch.n_tokens = len(prompts)
            return [{"tokens": t, "logprobs": lp} for t, lp in zip(tokens, logprobs)]
        finally:
            ll.llama_batch_free(batch)

    # -- llama-cpp-python's own text and chat paths ---------------------------------------------
    def text(self, req: dict, *, stream: bool):
        try:
            result = self.llm.create_completion(prompt=list(req["prompt"]), max_tokens=req["n"],
                                                temperature=0, stop=req["stop"] or None,
                                                stream=stream)
            if not stream:
                return result["choices"][0]["text"]
            return [chunk["choices"][0]["text"] for chunk in result]
        except RuntimeError as exc:
            self._refused(exc)
            raise

    def chat(self, messages: list[dict], tools: list | None, n: int) -> dict:
        """``create_chat_completion`` as it is, with the prompt ids it evaluated: the tokens
        its completion call hands ``Llama.generate`` (recorded on the way past), checked
        against what the context evaluated (``input_ids``) and against ``usage``."""
        llm = self.llm
        seen: list[list[int]] = []
        generate = llm.generate

        def recording(tokens, *args, **kwargs):
            seen.append(list(tokens))
            return generate(tokens, *args, **kwargs)

        llm.generate = recording
        try:
            result = llm.create_chat_completion(messages=messages, tools=tools, max_tokens=n,
                                                temperature=0)
        except RuntimeError as exc:
            self._refused(exc)
            raise
        finally:
            del llm.generate
        if len(seen) != 1:
            raise RuntimeError(f"create_chat_completion ran {len(seen)} completions, not one")
        ids = seen[0]
        usage = result["usage"]["prompt_tokens"]
        evaluated = [int(t) for t in llm.input_ids[:len(ids)]]
        if usage != len(ids) or evaluated != ids:
            raise RuntimeError(f"the chat prompt ids do not check out: {len(ids)} ids given, "
                               f"usage says {usage}, the context holds {evaluated[:8]}...")
        return {"prompt_ids": ids, "prompt_tokens": usage,
                "text": result["choices"][0]["message"].get("content")}

    def _refused(self, exc: RuntimeError) -> None:
        if str(exc).startswith("llama_decode returned"):
            self.llm.reset()
            raise Refused(str(exc)) from exc


def _put(batch, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq
    batch.logits[i] = logits


_callback = None  # the ctypes callback must outlive every llama.cpp call


def _log_errors(llama_cpp) -> None:
    """llama.cpp's warnings and errors to stderr, where the engine reads a dead or refusing
    worker's last words. (llama-cpp-python's own callback maps ggml's log levels as they were
    before ggml added DEBUG=1, so llama.cpp's errors arrive as DEBUG and ``verbose=False``
    drops them: "init: invalid token[2] = 999999" never shows.)"""
    global _callback
    warn, error, cont = 3, 4, 5  # enum ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT
    last = [0]

    @llama_cpp.llama_log_callback
    def callback(level, text, _user):
        level = last[0] if level == cont else level
        last[0] = level
        if level in (warn, error):
            os.write(2, text or b"")

    _callback = callback
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


if __name__ == "__main__":
    serve(lambda: handler(sys.argv[1]))
