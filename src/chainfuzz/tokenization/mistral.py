"""mistral-common: Mistral's reference tokenizers and its reference encoding of a chat request.

mistral-common never turns special-token text into control ids: a request's text fields are
encoded as plain text and the control tokens come only from its own request encoder.
"""

from __future__ import annotations

from pathlib import Path

from .base import Tokenizer, native


class MistralCommonTokenizer(Tokenizer):
    """A ``tekken*.json`` or ``tokenizer.model.v*`` file, as mistral-common loads it."""

    impl = "mistral-common"
    packages = ("mistral-common", "sentencepiece")
    parses_special = False

    def __init__(self, path: Path) -> None:
        from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self.mistral = MistralTokenizer.from_file(str(path))
        self.raw = self.mistral.instruct_tokenizer.tokenizer
        self._ignore = SpecialTokenPolicy.IGNORE
        self._special_ids = set(self.raw.special_ids)
        self.vocab_size = self.raw.n_words
        self.bos_id, self.eos_id, self.unk_id = self.raw.bos_id, self.raw.eos_id, self.raw.unk_id
        self.adds_bos = True  # every mistral-common request encoding starts with BOS
        self.special = {self.raw.id_to_piece(i): i for i in sorted(self.raw.special_ids)}
        self.added = {}

    def encode(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        with native("encode"):  # tekken encodes with tiktoken, Rust too
            return list(self.raw.encode(text, bos=add_special, eos=False))

    def decode(self, ids: list[int]) -> str:
        with native("decode"):
            return self._decode(ids)

    def _decode(self, ids: list[int]) -> str:
        # KEEP spells a SentencePiece model's ordinary tokens as raw pieces ("▁Hello"), so runs
        # of ordinary ids are decoded as text and the special ids spelled out between them.
        out, run = [], []
        for i in ids:
            if i in self._special_ids:
                out += [self.raw.decode(run, special_token_policy=self._ignore) if run else "",
                        self.raw.id_to_piece(i)]
                run = []
            else:
                run.append(i)
        out.append(self.raw.decode(run, special_token_policy=self._ignore) if run else "")
        return "".join(out)

    def encode_chat(self, messages: list, tools: list | None = None) -> list[int]:
        """The reference encoding of a whole chat request (raises on a request it refuses)."""
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        request = ChatCompletionRequest.from_openai(messages, tools=tools)
        with native("encode_chat"):
            return list(self.mistral.encode_chat_completion(request).tokens)
