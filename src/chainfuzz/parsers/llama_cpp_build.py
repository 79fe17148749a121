"""Building chainfuzz's llama.cpp parser program from the llama.cpp source in the llama-cpp-python sdist.

The program (``llama_cpp_parse.cpp``, package data) is compiled with llama.cpp's ``common/``
chat sources only, linked against the ``libllama``/``libggml`` that the installed
llama-cpp-python wheel ships (for the few symbols ``common/`` takes from them), and cached
under ``chainfuzz.corpus.cache_dir()`` in two steps: ``common/``'s objects (the slow part, ~2
minutes), keyed by the sdist's version and the recipe, then the program, keyed by those, the
program's source and the library folder (seconds). A second run, or a second process, reuses
both; a changed program recompiles only itself.
``chainfuzz fetch llama.cpp-parser`` builds it ahead (``make test`` does); otherwise the first
use builds it, saying so in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROGRAM_SOURCE = Path(__file__).with_name("llama_cpp_parse.cpp")
PROGRAM_NAME = "llama_cpp_parse"
CORPUS = "llama.cpp"  # the corpus whose sdist holds vendor/llama.cpp
ROOT = "vendor/llama.cpp/"

# What the program needs from the sdist: headers, common/'s chat sources, and the two server
# files whose functions are cut out into server_state.inc.
MEMBERS = ("common/", "include/", "ggml/include/", "vendor/nlohmann/", "CMakeLists.txt",
           "tools/server/server-task.cpp", "tools/server/server-chat.cpp")
# common/'s sources that chat parsing links against (the closure of chat.cpp, found by linking);
# jinja/ and parsers/ are added whole. 35 files, ~110 s of CPU at -O2 (measured).
COMMON_SOURCES = ("chat.cpp", "chat-auto-parser-generator.cpp", "chat-auto-parser-helpers.cpp",
                  "chat-diff-analyzer.cpp", "chat-peg-parser.cpp", "peg-parser.cpp", "json.cpp",
                  "json-schema-to-grammar.cpp", "json-schema.cpp", "unicode.cpp", "log.cpp", "common.cpp",
                  "trie.cpp")
WHOLE_FOLDERS = ("jinja", "parsers")
# Release flags as llama.cpp's CMake build uses them; -ffunction-sections with --gc-sections
# drops the parts of common.cpp that need the rest of libllama.
CXXFLAGS = ("-std=c++17", "-O2", "-DNDEBUG", "-pthread", "-ffunction-sections", "-fdata-sections")
# The server's code the program runs as is, cut from tools/server at build time.
SERVER_FUNCTIONS = (("tools/server/server-task.cpp", "common_chat_msg task_result_state::update_chat_msg("),
                    ("tools/server/server-chat.cpp", "json server_chat_msg_diff_to_json_oaicompat("))


def compiler() -> str:
    """The C++ compiler (``$CXX``, else ``g++`` or ``c++``); ImportError if there is none."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name and (path := shutil.which(name)):
            return path
    raise ImportError("llama.cpp's parser needs a C++ compiler (g++) to build, and none is installed",
                      name="g++")


def library_dir() -> Path:
    """The folder holding the installed llama-cpp-python's libllama; ImportError if absent."""
    import importlib.util

    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("llama.cpp's parser links against llama-cpp-python's libllama: "
                          "pip install 'chainfuzz[llama]'", name="llama-cpp-python")
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    if not (lib / "libllama.so").exists():
        raise ImportError(f"llama-cpp-python has no libllama.so in {lib}", name="llama-cpp-python")
    return lib


def _version_tag() -> str:
    from ..corpus import CORPORA

    return CORPORA[CORPUS].requirement.split("==")[1]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def common_dir() -> Path:
    """The cache folder of ``common/``'s objects, the extracted headers and the server code."""
    from ..corpus import cache_dir

    recipe = json.dumps([MEMBERS, COMMON_SOURCES, WHOLE_FOLDERS, CXXFLAGS, SERVER_FUNCTIONS])
    return cache_dir() / "llama.cpp-parser" / f"common-{_version_tag()}-{_digest(recipe.encode())}"


def program_dir() -> Path:
    """The cache folder this program source, ``common/`` build and library folder build into."""
    from ..corpus import cache_dir

    key = _digest(PROGRAM_SOURCE.read_bytes(), common_dir().name.encode(), str(library_dir()).encode())
    return cache_dir() / "llama.cpp-parser" / f"{_version_tag()}-{key}"


def program_path(*, quiet: bool = False) -> Path:
    """The built program, building it first if the cache lacks it (one line on stderr)."""
    folder = program_dir()
    if not (folder / PROGRAM_NAME).exists():
        compiler()  # no compiler: ImportError before saying that it builds
        if not quiet:
            slow = "" if (common_dir() / "version.json").exists() else " (once, a few minutes)"
            print(f"building llama.cpp's parser from source into {folder}{slow} ...", file=sys.stderr)
        build(folder)
    return folder / PROGRAM_NAME


def fetch(*, quiet: bool = True) -> Path:
    """The program's folder, built unless the cache has it (`chainfuzz fetch llama.cpp-parser`)."""
    return program_path(quiet=quiet).parent


def versions(folder: Path) -> dict[str, str]:
    """What the program was built from, as the build recorded it."""
    return json.loads((folder / "version.json").read_text(encoding="utf-8"))


def build(folder: Path | None = None) -> Path:
    """Compile the program into ``folder`` (default `program_dir`), and ``common/`` first
    unless cached; returns the folder."""
    cxx, lib = compiler(), library_dir()
    folder = folder or program_dir()
    if (folder / PROGRAM_NAME).exists():
        return folder
    common = build_common()
    with _staging(folder) as out:
        failure = _run([cxx, *CXXFLAGS, *_includes(common), "-c", str(PROGRAM_SOURCE), "-o", str(out / "main.o")])
        if failure:
            raise ImportError(f"building llama.cpp's parser failed: {failure}", name="llama.cpp-parser")
        objects = sorted(map(str, (common / "obj").glob("*.o")))
        failure = _run([cxx, "-pthread", "-o", str(out / PROGRAM_NAME), str(out / "main.o"), *objects,
                        "-Wl,--gc-sections", "-Wl,--as-needed", f"-L{lib}", "-lllama", "-lggml", "-lggml-base",
                        f"-Wl,-rpath,{lib}"])
        if failure:
            raise ImportError(f"linking llama.cpp's parser failed: {failure}", name="llama.cpp-parser")
        (out / "main.o").unlink()
        shutil.copy(common / "version.json", out / "version.json")
    return folder


def build_common(folder: Path | None = None) -> Path:
    """Extract what the program needs from the sdist and compile ``common/``'s chat sources
    into ``folder`` (default `common_dir`), unless done; returns the folder."""
    from ..corpus import download

    cxx = compiler()
    folder = folder or common_dir()
    if (folder / "version.json").exists():
        return folder
    archive = download(CORPUS)
    with _staging(folder) as out:
        src = out / "llama.cpp"
        changelog = _extract(archive, src)
        (out / "server_state.inc").write_text(_server_functions(src), encoding="utf-8")
        sources = [src / "common" / s for s in COMMON_SOURCES]
        sources += sorted(p for d in WHOLE_FOLDERS for p in (src / "common" / d).glob("*.cpp"))
        (out / "obj").mkdir()
        objects = [out / "obj" / f"{i:02d}-{p.stem}.o" for i, p in enumerate(sources)]
        with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
            failures = list(pool.map(lambda so: _run([cxx, *CXXFLAGS, *_includes(out), "-c", str(so[0]), "-o",
                                                      str(so[1])]), zip(sources, objects)))
        if failure := next((f for f in failures if f), None):
            raise ImportError(f"building llama.cpp's common/ failed: {failure}", name="llama.cpp-parser")
        (out / "version.json").write_text(json.dumps(_version(src, archive, changelog), indent=1) + "\n",
                                          encoding="utf-8")
    return folder


def _includes(common: Path) -> list[str]:
    src = common / "llama.cpp"
    return [f"-I{common}", f"-I{src / 'common'}", f"-I{src / 'include'}", f"-I{src / 'ggml/include'}",
            f"-I{src / 'vendor'}"]


@contextlib.contextmanager
def _staging(folder: Path):
    """A temporary folder beside ``folder`` to build in, renamed to ``folder`` when the build
    succeeds: no process sees half a build, and of two builds at once the first rename wins."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".build-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        yield out
        try:
            out.rename(folder)
        except OSError:  # another process built it first
            if not folder.exists():
                raise


def _run(argv: list[str]) -> str:
    """Run one compiler command: "" if it succeeded, else its first error line."""
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    if proc.returncode == 0:
        return ""
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines() or ["no output"]
    return lines[0][:300]


def _extract(archive: Path, dest: Path) -> str:
    """Extract `MEMBERS` of vendor/llama.cpp under ``dest``; returns the sdist's CHANGELOG.md."""
    changelog = ""
    with tarfile.open(archive) as tf:
        for member in tf:
            if member.name.endswith("/CHANGELOG.md") and member.name.count("/") == 1:
                changelog = tf.extractfile(member).read().decode("utf-8", "replace")
            i = member.name.find(ROOT)
            rel = member.name[i + len(ROOT):] if i >= 0 else ""
            if not member.isfile() or not rel.startswith(MEMBERS) or ".." in rel.split("/"):
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            data = tf.extractfile(member)
            if data is not None:
                out.write_bytes(data.read())
    return changelog


def _server_functions(src: Path) -> str:
    """The server functions the program runs, cut out of tools/server: from the line that
    starts the definition to the first line that is a lone closing brace."""
    parts = []
    for path, head in SERVER_FUNCTIONS:
        lines = (src / path).read_text(encoding="utf-8").split("\n")
        start = next((i for i, ln in enumerate(lines) if ln.startswith(head)), None)
        end = next((j for j in range(start, len(lines)) if lines[j] == "}"), None) if start is not None else None
        if end is None:
            raise ImportError(f"llama.cpp's {path} no longer defines {head.rstrip('(')}: the program needs updating",
                              name="llama.cpp-parser")
        parts.append(f"// {path}, cut by chainfuzz's build\n" + "\n".join(lines[start:end + 1]) + "\n")
    return "\n".join(parts)


def _version(src: Path, archive: Path, changelog: str) -> dict[str, str]:
    """llama.cpp's version (CMakeLists.txt's LLAMA_VERSION_*) and the commit the sdist's
    changelog names for its release, with the sdist itself."""
    from ..corpus import CORPORA

    cmake = (src / "CMakeLists.txt").read_text(encoding="utf-8", errors="replace")
    parts = [re.search(rf"set\(LLAMA_VERSION_{p} (\d+)\)", cmake) for p in ("MAJOR", "MINOR", "PATCH")]
    version = ".".join(m.group(1) for m in parts) if all(parts) else "unknown"
    release = CORPORA[CORPUS].requirement.split("==")[1]
    section = changelog.split(f"## [{release}]", 1)[-1]
    commit = m.group(1) if (m := re.search(r"llama\.cpp@([0-9a-f]{7,40})", section)) else "unknown"
    return {"llama.cpp": f"{version}@{commit}", "llama.cpp-source": archive.name}
