"""A GGUF file's key-value header, read fast.

``gguf.GGUFReader`` builds a numpy view per string and takes 8-20 s on a 150k-260k token
vocabulary; this reads the same header with ``struct`` over a memory map in a fraction of a
second, and never touches the tensor data after it (a model GGUF may be gigabytes).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from .files import open_regular

# GGUF value types: (struct format, size) of the fixed-size ones; 8 is a string, 9 an array.
_SCALARS = {0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
            6: ("f", 4), 7: ("?", 1), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8)}
STRING, ARRAY = 8, 9


def read_kv(path: Path) -> dict[str, tuple[int, object, int | None]]:
    """A GGUF's key-value pairs as ``{key: (type, value, array element type)}``, strings as
    raw bytes (so a token that is not valid UTF-8 copies unchanged). ``ValueError`` if the
    file is not a GGUF of version 2 or later, or its header is cut short, malformed or claims
    more than the file holds; `chainfuzz.errors.TargetError` if ``path`` is not a regular file."""
    with open_regular(path) as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _parse(data)
        except (struct.error, KeyError, UnicodeDecodeError) as exc:
            raise ValueError(f"a malformed GGUF header ({type(exc).__name__}: {exc})") from None


def _parse(data) -> dict[str, tuple[int, object, int | None]]:
    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file (no GGUF magic)")
    version, _n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version}; only version 2 and later are read")
    pos = 24
    # Every count is checked against the bytes left before anything is allocated for it: a
    # header claiming 2**60 pairs or a 2**40-byte string is refused, not believed.
    if n_kv * 12 > len(data) - pos:  # a pair takes at least a key length and a type
        raise ValueError(f"the header claims {n_kv} key-value pairs, more than the file holds")

    def fits(n: int, size: int, what: str) -> None:
        if n * size > len(data) - pos:
            raise ValueError(f"{what} claims {n} elements, more than the file holds")

    def string() -> bytes:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        if pos + 8 + n > len(data):
            raise struct.error("a string runs past the end of the file")
        pos += 8 + n
        return bytes(data[pos - n:pos])

    out = {}
    for _ in range(n_kv):
        key = string().decode("utf-8")
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if kind == STRING:
            out[key] = (kind, string(), None)
        elif kind == ARRAY:
            sub, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            fits(n, 8 if sub == STRING else _SCALARS.get(sub, ("", 1))[1], key)
            if sub == STRING:
                values = [string() for _ in range(n)]
            else:
                fmt, size = _SCALARS[sub]
                values = list(struct.unpack_from(f"<{n}{fmt}", data, pos))
                pos += n * size
            out[key] = (kind, values, sub)
        else:
            fmt, size = _SCALARS[kind]
            (value,) = struct.unpack_from("<" + fmt, data, pos)
            pos += size
            out[key] = (kind, value, None)
    return out
