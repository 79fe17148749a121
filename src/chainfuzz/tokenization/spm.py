"""SentencePiece ``.model`` files through the ``sentencepiece`` library itself."""

from __future__ import annotations

from pathlib import Path

from ..internal import files
from .base import Tokenizer, TokenizerSource

_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4


class SentencePieceTokenizer(Tokenizer):
    """Plain SentencePiece: it never parses control-token text, only user-defined pieces."""

    impl = "sentencepiece"
    packages = ("sentencepiece", "protobuf")
    parses_special = False

    @classmethod
    def from_source(cls, source: TokenizerSource) -> "SentencePieceTokenizer":
        path = Path(source.path)
        return cls(path / "tokenizer.model" if path.is_dir() else path)

    def __init__(self, path: Path) -> None:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2

        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(files.read_bytes(path, files.MODEL_BYTES))
        self.vocab_size = self.sp.get_piece_size()
        self.bos_id = _id_or_none(self.sp.bos_id())
        self.eos_id = _id_or_none(self.sp.eos_id())
        self.unk_id = _id_or_none(self.sp.unk_id())
        self.adds_bos = self.bos_id is not None  # the Llama convention every SP server follows
        self.special = {p.piece: i for i, p in enumerate(proto.pieces) if p.type in (_CONTROL, _UNKNOWN)}
        self.added = {p.piece: i for i, p in enumerate(proto.pieces) if p.type == _USER_DEFINED}
        self._control = {i for i, p in enumerate(proto.pieces) if p.type == _CONTROL}
        name = proto.normalizer_spec.name
        self.normalizer = None if name in ("", "identity") else f"Precompiled({name})"

    def encode(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        ids = list(self.sp.encode(text, out_type=int))
        return [self.bos_id, *ids] if add_special and self.bos_id is not None else ids

    def decode(self, ids: list[int]) -> str:
        # sp.decode renders control ids as "", so they are spelled out between the segments.
        out, run = [], []
        for i in ids:
            if i in self._control:
                out += [self.sp.decode(run), self.sp.id_to_piece(i)]
                run = []
            else:
                run.append(i)
        out.append(self.sp.decode(run))
        return "".join(out)


def _id_or_none(i: int) -> int | None:
    return i if i >= 0 else None
