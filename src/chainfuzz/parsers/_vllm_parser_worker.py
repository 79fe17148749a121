"""The vLLM parser's worker: vLLM's output parsers on one tokenizer, behind a JSON-lines pipe.

Run by vLLM's own Python as a script path (``python _vllm_parser_worker.py TOKENIZER_DIR TOOL
REASONING``, an empty string for a parser not asked for), so it imports nothing of chainfuzz.
It loads the tokenizer and the parsers only: no model, no engine.

The parsers are driven as vLLM's OpenAI server drives them (vllm/entrypoints/openai/
chat_completion/serving.py and renderers/online_renderer.py, vLLM 0.32): one parser class from
``ParserManager.get_parser`` (auto tool choice on, validated against the tokenizer), the
request passed once through a parser's ``adjust_request`` as the renderer does, then a fresh
parser per response: ``parse`` for ``stream=false``, ``parse_delta`` per output for
``stream=true`` with ``finished`` on the last (which is where vLLM flushes held-back text and
unstreamed tool arguments).

Protocol: the first line written is ``{"ready": ...}``, or ``{"usage": MESSAGE}`` (an unknown
parser name, a tokenizer the parser refuses) and the worker exits. Then one JSON request per
line on stdin, one reply per line: a parser that raises gets ``{"crash": "Type: message"}``, a
request vLLM's request model refuses ``{"refused": message}``, and the worker goes on. Replies
go to a private duplicate of the original stdout; descriptor 1 points at stderr before vLLM is
imported, so nothing vLLM prints can corrupt a reply.
"""

import os
import sys

# Run as a script, this file's folder is first on sys.path, and it holds chainfuzz's parser
# modules: its vllm.py would shadow vLLM itself.
_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import json  # noqa: E402
import time  # noqa: E402


class Refused(Exception):
    """vLLM's request model refused the request (the server's 400), before any parser ran."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:2000]


def main() -> None:
    reply = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything written to stdout from here on (also by child processes) is stderr
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        reply.write(json.dumps(obj) + "\n")

    folder, tool_name, reasoning_name = sys.argv[1], sys.argv[2] or None, sys.argv[3] or None
    started = time.perf_counter()
    import vllm  # noqa: PLC0415 (after the stdout redirection)
    from pydantic import ValidationError  # noqa: PLC0415
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest  # noqa: PLC0415
    from vllm.parser import ParserManager  # noqa: PLC0415
    from vllm.reasoning import ReasoningParserManager  # noqa: PLC0415
    from vllm.tokenizers import get_tokenizer  # noqa: PLC0415
    from vllm.tool_parsers import ToolParserManager  # noqa: PLC0415

    for name, manager, what in ((tool_name, ToolParserManager, "tool"),
                                (reasoning_name, ReasoningParserManager, "reasoning")):
        known = manager.list_registered()
        if name is not None and name not in known:
            send({"usage": f"vLLM {vllm.__version__} has no {what} parser {name!r}; "
                           f"it has: {', '.join(known)}"})
            return
    tokenizer = get_tokenizer(folder)
    try:
        # The server tells gpt-oss models (Harmony format) by their config's model type.
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            is_harmony = json.load(f).get("model_type") == "gpt_oss"
    except (OSError, ValueError, AttributeError):
        is_harmony = False
    try:
        parser_cls = ParserManager.get_parser(tool_parser_name=tool_name, reasoning_parser_name=reasoning_name,
                                              enable_auto_tools=True, is_harmony=is_harmony, tokenizer=tokenizer)
    except Exception as exc:  # noqa: BLE001 (vLLM's refusal at startup, as `vllm serve` would fail)
        send({"usage": " ".join(str(exc).split())[:2000]})
        return
    send({"ready": True, "startup_s": round(time.perf_counter() - started, 2), "pid": os.getpid(),
          "version": vllm.__version__})

    def make_request(r: dict):
        """The ChatCompletionRequest a client sends, adjusted as the renderer adjusts it,
        and the chat template kwargs the server builds parsers with."""
        body = {"model": "chainfuzz", "messages": [{"role": "user", "content": "chainfuzz"}]}
        if r.get("tools"):
            body.update(tools=r["tools"], tool_choice="auto")
        if r.get("template_kwargs"):
            body["chat_template_kwargs"] = r["template_kwargs"]
        try:
            request = ChatCompletionRequest(**body)
        except ValidationError as exc:
            raise Refused(_one_line(exc)) from None
        kwargs = request.build_chat_params(None, "auto").with_defaults({}).chat_template_kwargs
        request = new_parser(request, kwargs).adjust_request(request)
        return request, kwargs

    def new_parser(request, kwargs):
        return parser_cls(tokenizer, request.tools, chat_template_kwargs=kwargs, model_config=None)

    def parse(r: dict) -> dict:
        request, kwargs = make_request(r["request"])
        parser = new_parser(request, kwargs)
        parser.set_prompt_token_ids(r["request"].get("prompt_ids") or [])
        text = r["text"]
        # The server hands over the generated ids; here they are the text's encoding.
        ids = tokenizer.encode(text, add_special_tokens=False)
        reasoning, content, calls = parser.parse(text, request, enable_auto_tools=True, model_output_token_ids=ids)
        # The server keeps parsed calls only for an "auto" request with tools (serving.py's
        # chat_completion_full_generator): with none, tool_choice is "none".
        if not (request.tools and request.tool_choice == "auto"):
            calls = []
        return {"reasoning": reasoning, "content": content,
                "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in calls or []]}

    def stream(r: dict) -> dict:
        request, kwargs = make_request(r["request"])
        parser = new_parser(request, kwargs)
        prompt_ids = list(r["request"].get("prompt_ids") or [])
        deltas, emitted = [], 0
        chunks = r["chunks"]
        for k, (text, ids) in enumerate(chunks):
            if not text and not ids and not emitted:
                deltas.append(None)  # the server skips empty outputs before the first token
                continue
            emitted += len(ids)
            d = parser.parse_delta(delta_text=text, delta_token_ids=list(ids), request=request,
                                   prompt_token_ids=prompt_ids, finished=k == len(chunks) - 1)
            if d is not None and request.parallel_tool_calls is False and d.tool_calls:
                d.tool_calls = [t for t in d.tool_calls if t.index == 0]  # maybe_filter_parallel_tool_calls
            deltas.append(None if d is None else {
                "content": d.content, "reasoning": d.reasoning,
                "tool_calls": [{"index": t.index, "id": t.id,
                                "name": t.function.name if t.function else None,
                                "arguments": t.function.arguments if t.function else None}
                               for t in d.tool_calls or []]})
        return {"deltas": deltas}

    ops = {"parse": parse, "stream": stream, "ping": lambda r: {"pid": os.getpid()}}
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        try:
            result = ops[r["op"]](r)
        except Refused as exc:  # the request model's refusal: a 400, not the parser
            result = {"refused": str(exc)}
        except Exception as exc:  # noqa: BLE001 (the parser raised: a 500 for this text)
            result = {"crash": _one_line(exc)}
        send(result)


if __name__ == "__main__":
    main()
