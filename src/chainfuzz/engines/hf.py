"""transformers on the CPU as an inference engine: ``generate`` over a batch of prompt ids.

The reference engine: fp32, greedy, left padding with an attention mask (what batched
generation needs). A single prompt reuses the KV cache of the previous one up to their common
prefix (transformers' documented cache re-use: ``past_key_values`` holding a prefix). Its text
API streams through transformers' own ``TextIteratorStreamer`` and its chat path is
``apply_chat_template``. The constructor's switches build the negative controls the engine
properties are tested with: sampling instead of greedy, padding without an attention mask, a
cached prefix not cropped where prompts diverge, a stream decoded one token at a time, a chat
template other than the model's.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

from ..internal import limits
from .base import ChatResult, Completion, Engine

# No generate on the tiny model comes near this (8-24 new tokens take well under a second);
# what bounds a call in practice is the command's budget, which clips it (`limits.call_timeout`).
CALL_TIMEOUT = 600.0


class TransformersEngine(Engine):
    """``AutoModelForCausalLM.generate`` on a model folder."""

    # fp32 greedy rows are bitwise equal alone and batched in practice; left padding moves the
    # logits by up to ~1.6e-5 (measured on the tiny model), so allow ten times that.
    tolerance = 2e-4
    packages = ("transformers", "torch")

    def __init__(self, folder: Path, *, temperature: float = 0.0, attention_mask: bool = True,
                 crop_cache: bool = True, flush_stream: bool = True, chat_template: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from transformers.utils import logging as hf_logging

        self.torch = torch
        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Loading weights" bars would garble the CLI's stderr
        try:
            self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        limits.check_budget()  # loading runs in this process: charged once it is done
        config = self.model.config
        self.pad_id = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id or 0
        self.temperature = temperature
        self.attention_mask = attention_mask
        self.crop_cache = crop_cache
        self.flush_stream = flush_stream
        self.chat_template = chat_template
        self._cache: tuple[list[int], object] | None = None  # the last single prompt and its KV
        flags = [f"temperature={temperature:g}" if temperature else "",
                 "" if attention_mask else "no attention mask", "" if crop_cache else "stale cache",
                 "" if flush_stream else "stream tail dropped", "other chat template" if chat_template else ""]
        self.name = "transformers" + "".join(f"({f})" for f in flags if f)

    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        """Each prompt's new tokens and their logprobs, generated together as one left-padded
        batch. EOS does not stop a row: every row gets exactly ``max_new_tokens``."""
        if len(prompts) == 1:
            return [self._generate_cached(prompts[0], max_new_tokens)]
        self._cache = None
        return self._generate_batch(prompts, max_new_tokens)

    def clear_prefix_cache(self) -> None:
        self._cache = None

    def generate_uncached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        return self._generate_batch([prompt], max_new_tokens)[0]

    def _generate_cached(self, prompt: list[int], max_new_tokens: int) -> Completion:
        """One prompt, starting from the previous prompt's KV cache cropped to their common
        prefix (at least the last prompt token is decoded anew, for its logits); the prompt's
        own KV is kept for the next call."""
        past = None
        if self._cache is not None:
            cached, kv = self._cache
            common = min(_common_prefix(cached, prompt), len(prompt) - 1)
            if not self.crop_cache and len(cached) < len(prompt):
                past = copy.deepcopy(kv)  # the defect: the whole previous prompt's KV, diverged or not
            elif common > 0:
                past = _cropped(copy.deepcopy(kv), common)
        out = self._generate(self.torch.tensor([prompt]), None, max_new_tokens, cache=past,
                             output_logits=True, return_dict_in_generate=True)
        self._cache = (list(prompt), _cropped(out.cache, len(prompt)))
        return _completions(self.torch, out, len(prompt))[0]

    def _generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[Completion]:
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        if not self.attention_mask:
            mask = torch.ones_like(mask)
        out = self._generate(ids, mask, max_new_tokens, output_logits=True, return_dict_in_generate=True)
        return _completions(torch, out, width)

    def complete(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> str:
        ids = self._generate(self.torch.tensor([prompt]), None, max_new_tokens)[0, len(prompt):]
        return _cut(self.tok.decode(ids.tolist()), stop)

    def stream(self, prompt: list[int], max_new_tokens: int, stop: list[str]) -> list[str]:
        """Deltas from transformers' ``TextIteratorStreamer``, with stop strings held back the
        way servers do it: text that could begin a stop string waits until it cannot."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tok, skip_prompt=True)
        if not self.flush_stream:  # the defect: end the stream without sending what it held back
            streamer.end = lambda: streamer.on_finalized_text("", stream_end=True)
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self._generate(self.torch.tensor([prompt]), None, max_new_tokens, streamer=streamer)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
                failed.append(exc)
            finally:  # the consumer must not wait forever on a generate that raised
                streamer.end()

        worker = threading.Thread(target=run)
        worker.start()
        deltas = list(_hold_back_stops(streamer, stop))
        worker.join()
        if failed:
            raise failed[0]
        return deltas

    def chat(self, messages: list[dict], tools: list | None, max_new_tokens: int) -> ChatResult:
        """``apply_chat_template(tokenize=True)``: transformers' own chat path, which renders and
        encodes in one call."""
        ids = self.tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True,
                                           chat_template=self.chat_template, return_dict=False)
        ids = list(ids)
        return ChatResult(prompt_ids=ids, prompt_tokens=len(ids))

    def _generate(self, ids, mask, max_new_tokens: int, **kwargs):
        """``generate`` stopped at the budget's end (``max_time``, checked between tokens):
        a generation the budget cut short raises `limits.BudgetExhausted`."""
        torch = self.torch
        if mask is None:
            mask = torch.ones_like(ids)
        sample = self.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens, do_sample=sample, pad_token_id=self.pad_id,
                max_time=limits.call_timeout(CALL_TIMEOUT),
                **({"temperature": self.temperature, "top_k": 0, "top_p": 1.0} if sample else {}), **kwargs)
        limits.check_budget()
        return out


def _completions(torch, out, width: int) -> list[Completion]:
    """New tokens and chosen-token logprobs from ``generate``'s dict output. Raw logits, not
    the processed scores: min_new_tokens sets EOS to -inf."""
    new = out.sequences[:, width:]
    logprobs = torch.stack([torch.log_softmax(step, dim=-1) for step in out.logits], dim=1)
    chosen = logprobs.gather(2, new.unsqueeze(-1)).squeeze(-1)
    return [Completion(tokens=row.tolist(), logprobs=lp.tolist()) for row, lp in zip(new, chosen)]


def _cropped(kv, length: int):
    """``kv`` cut down to its first ``length`` positions (``crop`` takes how many to remove)."""
    kv.crop(-(kv.get_seq_length() - length))
    return kv


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _cut(text: str, stop: list[str]) -> str:
    """``text`` up to the first occurrence of any stop string (OpenAI's ``stop`` semantics)."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[:min(cuts)] if cuts else text


def _hold_back_stops(pieces, stop: list[str]):
    """Yield ``pieces`` re-cut so that no stop string, nor anything after it, is ever sent."""
    sent, buffer = 0, ""
    for piece in pieces:
        buffer += piece
        cut = _cut(buffer, stop)
        if cut != buffer:  # a stop string arrived: send what precedes it and end
            if len(cut) > sent:
                yield cut[sent:]
            return
        # Keep back the longest tail that is a proper prefix of some stop string.
        keep = max((k for s in stop for k in range(1, len(s)) if buffer.endswith(s[:k])), default=0)
        if len(buffer) - keep > sent:
            yield buffer[sent:len(buffer) - keep]
            sent = len(buffer) - keep
    if len(buffer) > sent:
        yield buffer[sent:]
