"""Text that came from templates and targets, made safe to record and to show.

Everything chainfuzz records or prints may hold what a hostile template or file put there: lone
surrogates (``{{ '\\ud800' }}``, a file name that is not UTF-8, which Python holds
surrogate-escaped), terminal control sequences, bidi overrides, or 100 MB of one message.
`dumps_json` writes any value as strict UTF-8 JSON that reads back to the same strings;
`printable` makes any text one harmless line for a terminal; `clip` bounds free text.
"""

from __future__ import annotations

import json
import re

# Lone surrogates: str can hold them (from "\ud800" literals, or os.fsdecode of bytes that are
# not UTF-8), UTF-8 cannot encode them.
_SURROGATE = re.compile("[\ud800-\udfff]")

# What must not reach a terminal raw: C0 controls (newline and tab too: a message is one line),
# DEL, C1 controls (0x9b is a one-byte CSI), Unicode's Bidi_Control characters (an override
# reorders what follows), the line and paragraph separators (str.splitlines breaks on them),
# and lone surrogates (a UTF-8 stream cannot encode them).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                          "\u2066-\u2069\ud800-\udfff]")

# Free text of a record (message, observed, expected, rendered): a template's
# raise_exception('E' * 10**8) wrote a 200 MB case file before this bound.
TEXT_LIMIT = 20_000


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\udXXX`` escape (strict UTF-8 can
    then encode it)."""
    return _SURROGATE.sub(_escape, text)


def dumps_json(value: object, *, indent: int | None = 2) -> str:
    """``value`` as JSON that strict UTF-8 encodes and `json.loads` reads back unchanged:
    readable (``ensure_ascii=False``), but each lone surrogate written as its ``\\udXXX``
    escape. A file name that is not UTF-8 (held surrogate-escaped) thus maps back to its
    bytes through `os.fsencode`. (A high and a low surrogate side by side read back as the
    one character they encode: JSON cannot tell them apart.)"""
    # With ensure_ascii=False every character outside a JSON string is ASCII, so a surrogate
    # in the output is inside a string literal, where its escape is valid JSON.
    return escape_surrogates(json.dumps(value, indent=indent, ensure_ascii=False))


def printable(text: object, limit: int | None = None, *, tail: int = 0) -> str:
    """``text`` (any value: ``str()`` of it) as one line a terminal shows as it is: control
    characters, DEL, C1, bidi controls, line separators and lone surrogates written as
    visible ``\\xNN`` / ``\\uNNNN`` escapes; longer than ``limit`` characters, cut with a note
    (`clip`). Backslashes are left alone, so an escape cannot be told from the same text
    typed out; what matters is that nothing reaches the terminal raw."""
    text = text if isinstance(text, str) else str(text)
    if limit is not None:
        text = clip(text, limit, tail=tail)
    return _UNPRINTABLE.sub(_escape, text)


def clip(text: str, limit: int = TEXT_LIMIT, *, tail: int = 0) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut: its first ones, and
    with ``tail`` its last ``tail`` ones too (an error line's reason comes after the path)."""
    if len(text) <= limit:
        return text
    head = max(0, limit - tail)
    end = f" …{text[len(text) - tail:]}" if tail else ""
    return f"{text[:head]} … [{len(text) - head - tail} characters cut]{end}"


def clip_value(value: object, limit: int = TEXT_LIMIT) -> object:
    """A record's free-text field bounded: a long string clipped; a structure whose JSON is
    longer than ``limit`` characters replaced by that JSON, clipped (so a list of a million
    short strings is bounded too)."""
    if isinstance(value, str):
        return clip(value, limit)
    try:
        dumped = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # not JSON, circular, too deep, a huge int
        return clip(_repr(value), limit)
    return value if len(dumped) <= limit else clip(dumped, limit)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a repr that raises (an int past str()'s digit limit)
        return f"<{type(value).__name__} that cannot be shown>"


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type ("object", "array", "string", "number", "boolean",
    "null"), for error lines that must not quote a hostile value itself."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
