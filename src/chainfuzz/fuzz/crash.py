"""Crash mode's exceptions: a type per property, raised from frames named after the defect.

OSS-Fuzz and ClusterFuzzLite report a finding only as a crash, and ClusterFuzz groups crashes
by their crash type and state. For Python its stack analyzer (``src/clusterfuzz/stacktraces``
in google/clusterfuzz: ``PYTHON_UNHANDLED_EXCEPTION``, ``PYTHON_STACK_FRAME_FUNCTION_REGEX``,
``reverse_python_stacktrace``) reads what atheris prints after
``=== Uncaught Python exception: ===``: the crash type is always "Uncaught exception", and the
state is the *function names* (only the part after ``in``) of the three innermost traceback
frames that its ignore list keeps (``STACK_FRAME_IGNORE_REGEXES``: names starting with
``main``, ``new``, ``free``... or containing ``assert``, ``logger``...), each cut at 80
characters, with runs of 4+ digits replaced by ``NUMBER``. The exception type is not in the
state, so a type per property alone would let every defect raised from the same line merge.

So the failure is raised through two generated frames: ``property_<id>`` (one per property)
calling ``defect_<hash>`` (one per property and key, hashed together, spelled in letters so
no digit run is normalised away). Two of the three state frames differ between defects; if a
property's id happens to hold an ignored word, the defect frame still tells them apart.
"""

from __future__ import annotations

import functools
import hashlib
import re
import types
from typing import Callable, NoReturn

from ..errors import PropertyFailed

# What tracebacks show as the types' module: importable, and says where they come from.
MODULE = __name__


@functools.cache
def failure_type(prop_id: str) -> type[PropertyFailed]:
    """The exception class of property ``prop_id``: ``template.renders`` ->
    ``TemplateRendersFailed``, a subclass of `PropertyFailed` (the same class each call)."""
    name = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9A-Za-z]+", prop_id) if w)
    if not name or name[0].isdigit():
        name = "Property" + name
    cls = type(name + "Failed", (PropertyFailed,), {
        "__module__": MODULE, "__doc__": f"Raised in crash mode when property {prop_id} fails."})
    return cls


def _ident(text: str) -> str:
    return re.sub(r"\W+", "_", text, flags=re.ASCII).strip("_")


def _letters(prop_id: str, key: str) -> str:
    """Ten letters from the SHA-256 of property and key (40 bits): digits would be normalised
    to NUMBER."""
    digest = hashlib.sha256(f"{prop_id}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:10].translate(
        str.maketrans("0123456789abcdef", "abcdefghijklmnop"))


def frame_names(prop_id: str, key: str) -> tuple[str, str]:
    """The names of the two generated frames, innermost first: the defect's and the property's."""
    return f"defect_{_letters(prop_id, key)}", f"property_{_ident(prop_id)}"[:80]


def _raise(exc: BaseException) -> NoReturn:
    raise exc


def _call(inner: Callable[[BaseException], NoReturn], exc: BaseException) -> NoReturn:
    inner(exc)


def _renamed(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` whose frames tracebacks name ``name`` (same file and lines)."""
    code = fn.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):  # 3.11+: what some tracebacks print
        code = code.replace(co_qualname=name)
    return types.FunctionType(code, fn.__globals__, name)


@functools.cache
def _defect_frame(prop_id: str, key: str) -> Callable:
    return _renamed(_raise, frame_names(prop_id, key)[0])


@functools.cache
def _property_frame(prop_id: str) -> Callable:
    return _renamed(_call, frame_names(prop_id, "")[1])


def raise_failure(prop_id: str, key: str, target: str) -> NoReturn:
    """Raise ``failure_type(prop_id)`` for defect ``key`` of ``target``, from the frames
    ``property_<id>`` -> ``defect_<hash>``, with no chained context (one traceback)."""
    exc = failure_type(prop_id)(prop_id, key, target)
    exc.__suppress_context__ = True
    _property_frame(prop_id)(_defect_frame(prop_id, key), exc)
