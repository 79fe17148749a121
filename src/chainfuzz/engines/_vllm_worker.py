"""The vLLM engine's worker: ``vllm.LLM`` on one model folder behind a JSON-lines pipe.

Run by vLLM's own Python as a script path (``python _vllm_worker.py FOLDER [OPTIONS_JSON]``),
so it imports nothing of chainfuzz: only the standard library and what vLLM's environment has.

Protocol: one JSON request per line on stdin, one JSON reply per line on the reply pipe. The
first line the worker writes is ``{"ready": ...}`` once the model is loaded. vLLM and torch
print to stdout; the reply pipe is a private duplicate of the original stdout, and file
descriptor 1 is pointed at stderr before vLLM is imported, so nothing they print (nor any
process they spawn, which inherits descriptor 1) can corrupt a reply.

A request vLLM refuses (validation, a template that raises) gets ``{"error": ...}`` and the
worker goes on; any other exception is the engine failing: the traceback goes to stderr and
the worker exits, which the parent reports as a crash.
"""

import os
import sys

# Run as a script, this file's folder is first on sys.path, and it holds chainfuzz's engine
# modules: its vllm.py would shadow vLLM itself (and an http.py the standard library's).
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402

# vllm.LLM's arguments; the parent may override any of them with OPTIONS_JSON.
DEFAULTS = {
    "dtype": "float32",
    "enable_prefix_caching": True,
    "seed": 0,
    "max_model_len": 4096,  # chainfuzz's prompts stay under 512 ids
    "max_num_seqs": 16,
    "max_num_batched_tokens": 4096,
    "enforce_eager": True,  # no torch.compile of the model: it costs minutes of startup
    # vLLM's CPU default is 128-token blocks: most chat prompts chainfuzz builds (under 512
    # ids) would never fill one, and the prefix cache would go untested. 32 is the smallest
    # block the CPU attention backend takes without complaint.
    "block_size": 32,
}


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything written to stdout from here on (also by child processes) is stderr
    sys.stdout = sys.stderr

    folder = sys.argv[1]
    options = {**DEFAULTS, **(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})}
    started = time.perf_counter()
    import vllm  # noqa: PLC0415 (after the stdout redirection)
    from vllm import LLM, SamplingParams  # noqa: PLC0415

    refusals = _refusals()
    llm = LLM(model=folder, tokenizer=folder, **options)
    # The sampler torch.compiles its logprob gathering on first use (5-20 s here, even with
    # enforce_eager): pay for it now, so startup is slow and calls are not.
    llm.generate([{"prompt_token_ids": [0]}], SamplingParams(temperature=0, max_tokens=2, logprobs=0),
                 use_tqdm=False)
    llm.reset_prefix_cache()
    reply.write(json.dumps({"ready": True, "startup_s": round(time.perf_counter() - started, 2),
                            "pid": os.getpid(), "version": vllm.__version__}) + "\n")

    def completion(out) -> dict:
        o = out.outputs[0]
        logprobs = [step[tok].logprob for step, tok in zip(o.logprobs or [], o.token_ids)]
        return {"tokens": list(o.token_ids), "logprobs": logprobs, "text": o.text,
                "cached": out.num_cached_tokens, "prompt_ids": list(out.prompt_token_ids or [])}

    def greedy(n: int):
        # logprobs=0: the chosen token's own logprob, no alternatives.
        return SamplingParams(temperature=0, max_tokens=n, min_tokens=n, ignore_eos=True, logprobs=0)

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request["op"]
        try:
            if op == "generate":
                prompts = [{"prompt_token_ids": p} for p in request["prompts"]]
                outs = llm.generate(prompts, greedy(request["n"]), use_tqdm=False)
                result = {"completions": [completion(o) for o in outs]}
            elif op == "generate_uncached":
                # A fresh salt goes into the hash of the request's first block and so of every
                # block after it: nothing cached before can match, nothing else can match it.
                prompt = {"prompt_token_ids": request["prompt"], "cache_salt": uuid.uuid4().hex}
                result = completion(llm.generate([prompt], greedy(request["n"]), use_tqdm=False)[0])
            elif op == "reset_prefix_cache":
                result = {"reset": bool(llm.reset_prefix_cache())}
            elif op == "complete":
                params = SamplingParams(temperature=0, max_tokens=request["n"], stop=request["stop"] or None)
                prompt = {"prompt_token_ids": request["prompt"]}
                result = completion(llm.generate([prompt], params, use_tqdm=False)[0])
            elif op == "chat":
                params = SamplingParams(temperature=0, max_tokens=request["n"])
                result = completion(llm.chat(request["messages"], params, tools=request["tools"],
                                             use_tqdm=False)[0])
            elif op == "ping":
                result = {"pid": os.getpid()}
            else:
                result = {"error": f"unknown op {op!r}"}
        except refusals as exc:  # the request's fault: a reply, and the engine goes on
            result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)  # the engine may be broken: die, and let the parent start a fresh one
        reply.write(json.dumps(result) + "\n")


def _refusals() -> tuple:
    """The exceptions that mean vLLM refused a request, not that it broke."""
    kinds = [ValueError, TypeError]
    try:
        from vllm.exceptions import VLLMClientError  # noqa: PLC0415

        kinds.append(VLLMClientError)
    except ImportError:
        pass
    try:
        from jinja2 import TemplateError  # noqa: PLC0415

        kinds.append(TemplateError)
    except ImportError:
        pass
    return tuple(kinds)


if __name__ == "__main__":
    main()
