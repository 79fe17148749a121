"""Reading a target's files whatever they are: regular files only, and never more than a cap.

A path may name a FIFO (whose open blocks until a writer comes), a device (``/dev/zero``
reads forever), a socket, or a file far larger than any real one. Every read of a target
file, and every path handed to a native library, goes through here first: anything but a
regular file is refused with one `TargetError` line saying what it is, and so is a file
over the cap for its kind.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..errors import TargetError

# Caps per kind of file, far above the real ones. Measured in the fetched corpora
# (~/.cache/chainfuzz): the largest chat template is 16.7 KB (openai-gpt-oss-120b.jinja);
# the largest JSON a tokenizer is read from 19.3 MB (mistral's tekken_240911.json), and
# Gemma 3's tokenizer.json is 33 MB; SentencePiece models are 0.5-4.5 MB.
TEMPLATE_BYTES = 4 << 20
JSON_BYTES = 64 << 20
MODEL_BYTES = 64 << 20  # a SentencePiece or mistral ``.model`` file

_CHUNK = 1 << 20

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def what_it_is(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a FIFO", "a character device"...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _refuse(path, st: os.stat_result, cap: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(f"{path}: {what_it_is(st.st_mode)}, not a regular file")
    if cap is not None and st.st_size > cap:
        raise TargetError(f"{path}: {st.st_size} bytes, more than the {_size(cap)} chainfuzz reads of such a file")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def check_regular(path: str | Path, cap: int | None = None) -> os.stat_result:
    """The ``stat`` of ``path`` (symlinks followed) if it is a regular file of at most ``cap``
    bytes; `TargetError` otherwise. For paths handed to a library that opens them itself."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read: {exc.strerror}") from None
    _refuse(path, st, cap)
    return st


def is_regular(path: str | Path) -> bool:
    """Whether ``path`` exists as a regular file (symlinks followed), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _open(path) -> int:
    """A descriptor of ``path`` if it is a regular file: opened non-blocking, so a FIFO never
    waits for a writer, then checked with ``fstat`` (what was opened is what is read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        _refuse(path, os.fstat(fd), None)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str | Path, cap: int) -> bytes:
    """The bytes of the regular file ``path``; `TargetError` if it is anything else or holds
    more than ``cap`` bytes (checked while reading too: a file may grow)."""
    fd = _open(path)
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            _refuse(path, os.fstat(fd), cap)
        chunks, total = [], 0
        while total <= cap:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise TargetError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if total > cap:
        raise TargetError(f"{path}: more than the {_size(cap)} chainfuzz reads of such a file")
    return b"".join(chunks)


def read_text(path: str | Path, cap: int) -> str:
    """`read_bytes` decoded as strict UTF-8; `TargetError` naming the byte otherwise."""
    data = read_bytes(path, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TargetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def sha256(paths: list[Path]) -> str:
    """The hash of the regular files ``paths`` in order, streamed (a GGUF may be gigabytes)."""
    digest = hashlib.sha256()
    for path in paths:
        fd = _open(path)
        try:
            while chunk := os.read(fd, _CHUNK):
                digest.update(chunk)
        except OSError as exc:
            raise TargetError(f"{path}: cannot read: {exc.strerror}") from None
        finally:
            os.close(fd)
    return digest.hexdigest()


def open_regular(path: str | Path):
    """A binary file object of the regular file ``path`` (for reads by offset: a GGUF)."""
    return os.fdopen(_open(path), "rb")


def write_atomic(path: str | Path, text: str) -> Path:
    """``text`` as ``path`` (UTF-8): a temporary file in the same folder, flushed to disk and
    renamed over it, so a reader, or a run killed mid-write, sees the old file or the new one."""
    import contextlib
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
