"""The llama.cpp side of `LlamaCppTokenizer`: one vocab-only model in its own process.

llama.cpp aborts the whole process on some inputs (an out-of-range id), so it never runs in
chainfuzz's process. Protocol: one JSON request per line on stdin, one JSON reply per line on
stdout. Run as ``python -m chainfuzz.tokenization._llama_worker GGUF``.
"""

from __future__ import annotations

import ctypes
import sys

from chainfuzz.internal.worker import serve


def handler(path: str):
    """Load the vocabulary; the function that answers each request."""
    import llama_cpp

    llm = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    vocab = llm._model.vocab

    def handle(req: dict) -> dict:
        op = req["op"]
        if op == "info":
            return info(llama_cpp, llm, vocab)
        if op == "encode":
            return {"ids": llm.tokenize(req["text"].encode("utf-8"), add_bos=req["add_special"],
                                        special=req["parse_special"])}
        if op == "decode":
            return {"text": detokenize(llama_cpp, vocab, req["ids"]).decode("utf-8", "replace")}
        return {"error": f"unknown op {op!r}"}

    return handle


def detokenize(llama_cpp, vocab, ids: list[int]) -> bytes:
    """``llama_detokenize`` with special tokens kept, growing the buffer as llama.cpp asks.

    (``Llama.detokenize`` goes piece by piece with a 32-byte buffer and drops longer pieces.)
    """
    arr = (llama_cpp.llama_token * len(ids))(*ids)
    size = max(64, 8 * len(ids))
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, True)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def info(llama_cpp, llm, vocab) -> dict:
    control, user, unk = {}, {}, None
    for i in range(llm.n_vocab()):
        attr = llama_cpp.llama_vocab_get_attr(vocab, i)
        if attr & (llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN):
            control[_text(llama_cpp, vocab, i)] = i
            unk = i if attr & llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN and unk is None else unk
        elif attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED:
            user[_text(llama_cpp, vocab, i)] = i
    bos, eos = llm.token_bos(), llm.token_eos()
    return {
        "n_vocab": llm.n_vocab(),
        "bos": bos if bos >= 0 else None,
        "eos": eos if eos >= 0 else None,
        "unk": int(llm.metadata.get("tokenizer.ggml.unknown_token_id", unk if unk is not None else -1)),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        # WPM (BERT) lowercases and strips accents by design.
        "wpm": llama_cpp.llama_vocab_type(vocab) == llama_cpp.LLAMA_VOCAB_TYPE_WPM,
        "special": control,
        "added": user,
    }


def _text(llama_cpp, vocab, i: int) -> str:
    return (llama_cpp.llama_vocab_get_text(vocab, i) or b"").decode("utf-8", "replace")


if __name__ == "__main__":
    serve(lambda: handler(sys.argv[1]))
