"""Loading check targets: templates, tokenizers, and files or folders that hold both.

A target is a chat template (its source plus what a server passes beside it: ``bos_token``,
``eos_token``, the other special tokens, and the strings the tokenizer treats as control
tokens), a tokenizer source, or both; its ``kinds`` say which properties apply. Accepted: a
``.jinja`` file, a Hugging Face model folder or ``tokenizer.json``, a ``.gguf`` file, a
SentencePiece ``.model``, mistral-common's ``tokenizer.model.v*`` and ``tekken*.json``, and a
folder of any of these. Anything unreadable raises `TargetError` with a one-line reason;
every file is read through `chainfuzz.internal.files` (regular files only, size caps).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TargetError
from .internal import files
from .internal.text import json_type
from .tokenization.base import TokenizerSource
from .tokenization.formats import is_tokenizer_file, lone_file_format

# Keys of tokenizer_config.json that transformers passes to templates as special tokens.
SPECIAL_TOKEN_KEYS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)


# A bare .jinja file names no tokens, but servers always pass bos_token and eos_token, and
# many templates fail without them. These stand in (llama.cpp's template tests use the same).
BARE_TEMPLATE_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


@dataclass(frozen=True)
class Target:
    """A chat template, a tokenizer, or both, with the tokens a server renders beside them."""

    source: str | None
    path: str
    name: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    control_tokens: tuple[str, ...] = ()
    template_name: str | None = None
    tokenizer: TokenizerSource | None = None
    model: str | None = None  # a model folder with weights an engine can run

    @property
    def kinds(self) -> set[str]:
        """The kinds of property that apply (rows of `chainfuzz.kinds.AVAILABLE_KINDS`): a
        template, a tokenizer (once per file, on the default template's target), a chain (a
        template with a tokenizer, or mistral-common's own request encoder), an engine (a
        model folder with weights, its template and tokenizer)."""
        from .kinds import recognised

        return set(recognised(self))

    @property
    def sha256(self) -> str:
        """The template's hash; a tokenizer's files are hashed in too where there is one."""
        digest = hashlib.sha256((self.source or "").encode("utf-8", "surrogatepass"))
        if self.tokenizer is None:
            return digest.hexdigest()
        digest.update(self.tokenizer.sha256.encode())
        return digest.hexdigest()

    @property
    def fingerprint(self) -> dict:
        """What a case file stores to identify the target across machines and versions."""
        return {
            "kind": "+".join(sorted(self.kinds)) or "template",
            "path": self.path,
            "name": self.name,
            "template_name": self.template_name,
            "tokenizer": None if self.tokenizer is None else self.tokenizer.format,
            "sha256": self.sha256,
        }


def load_targets(path: str | Path) -> list[Target]:
    """Every target at ``path``: one per named template in a model folder or GGUF file."""
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        raise TargetError(f"{path}: no such file or directory") from None
    except OSError as exc:  # a name too long, a loop of links, a folder it may not enter
        raise TargetError(f"{path}: cannot read: {exc.strerror}") from None
    if p.is_dir():
        if any((p / f).exists() for f in _HF_FOLDER_FILES):
            return _load_hf_folder(p)
        # Not is_file(): a FIFO or a device named like a target is refused by name, not skipped.
        members = sorted(q for q in p.iterdir() if _is_target_file(q) and not q.is_dir())
        if not members:
            raise TargetError(f"{path}: not a model folder and holds no template or tokenizer files")
        return [t for q in members for t in load_targets(q)]
    if p.suffix == ".gguf":
        return _load_gguf(p)
    if p.name in ("tokenizer_config.json", "tokenizer.json") and (p.parent / "tokenizer_config.json").exists():
        return _load_hf_folder(p.parent)
    if fmt := lone_file_format(p):
        return [tokenizer_target(p, fmt)]
    return [Target(source=_read_text(p, files.TEMPLATE_BYTES), path=str(path), name=p.name,
                   special_tokens=dict(BARE_TEMPLATE_TOKENS))]


# Files that make a folder a Hugging Face model folder.
_HF_FOLDER_FILES = ("tokenizer_config.json", "chat_template.jinja", "tokenizer.json")


def _is_target_file(p: Path) -> bool:
    return p.suffix == ".jinja" or is_tokenizer_file(p)


def tokenizer_target(p: Path, fmt: str) -> Target:
    """A target of just the tokenizer in file ``p`` (a format of `chainfuzz.tokenization.formats`)."""
    return Target(source=None, path=str(p), name=p.name, tokenizer=_source(fmt, p, [p]))


def _source(fmt: str, path: Path, members: list[Path]) -> TokenizerSource:
    """A tokenizer source whose hash covers ``members``, each checked as a regular file of at
    most its kind's cap before any library opens it (a GGUF is read by offset: no cap)."""
    for f in members:
        files.check_regular(f, _cap(f))
    return TokenizerSource(fmt, str(path), files.sha256(members))


def _cap(p: Path) -> int | None:
    """The most bytes chainfuzz lets a library read from the tokenizer file ``p``."""
    if p.suffix == ".gguf":
        return None
    return files.JSON_BYTES if p.suffix == ".json" else files.MODEL_BYTES


def load_target(path: str | Path, template_name: str | None = None) -> Target:
    """The one target at ``path`` (the named template where a folder has several)."""
    targets = load_targets(path)
    for t in targets:
        if t.template_name == template_name:
            return t
    if template_name is None:
        return targets[0]
    names = ", ".join(str(t.template_name) for t in targets)
    raise TargetError(f"{path}: no chat template named {template_name!r} (has: {names})")


def _read_text(p: Path, cap: int) -> str:
    return files.read_text(p, cap)


def _read_json(p: Path) -> dict:
    try:
        data = json.loads(_read_text(p, files.JSON_BYTES))
    except json.JSONDecodeError as exc:
        raise TargetError(f"{p}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise TargetError(f"{p}: JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise TargetError(f"{p}: expected a JSON object")
    return data


def _token_text(value, where: Path, name: str) -> str | None:
    """A special token as tokenizer_config.json stores it: a string or an AddedToken dict
    (None: absent); `TargetError` naming the file and the field for anything else."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    what = "an object without a string 'content'" if isinstance(value, dict) else _json_type(value)
    raise TargetError(f"{where}: {name} must be a string or an AddedToken object, not {what}")


def _json_type(value) -> str:
    """The JSON name of ``value``'s type with its article ("an object", "null"), for error lines."""
    name = json_type(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def _field(data: dict, key: str, kind: type, where: Path):
    """``data[key]`` if present and of ``kind``; a `TargetError` naming the file otherwise."""
    value = data.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        expected = "a JSON object" if kind is dict else "a JSON array"
        raise TargetError(f"{where}: {key} must be {expected}, not {type(value).__name__}")
    return value


def _load_hf_folder(folder: Path) -> list[Target]:
    config_path = folder / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.exists() else {}
    special = {k: t for k in SPECIAL_TOKEN_KEYS if (t := _token_text(config.get(k), config_path, k))}
    control = set(special.values())
    for i, tok in _field(config, "added_tokens_decoder", dict, config_path).items():
        if not isinstance(tok, dict):
            raise TargetError(f"{config_path}: added_tokens_decoder[{i!r}] must be an object, "
                              f"not {_json_type(tok)}")
        if tok.get("special") and (t := _token_text(tok, config_path, f"added_tokens_decoder[{i!r}]")):
            control.add(t)
    for i, t in enumerate(_field(config, "additional_special_tokens", list, config_path)):
        if text := _token_text(t, config_path, f"additional_special_tokens[{i}]"):
            control.add(text)
    tok_json = folder / "tokenizer.json"
    if tok_json.exists():
        for i, tok in enumerate(_field(_read_json(tok_json), "added_tokens", list, tok_json)):
            if not isinstance(tok, dict):
                raise TargetError(f"{tok_json}: added_tokens[{i}] must be an object, not {_json_type(tok)}")
            if tok.get("special") and (t := _token_text(tok, tok_json, f"added_tokens[{i}]")):
                control.add(t)

    named = _named_templates(config.get("chat_template"), config_path)
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.exists():
        named = {**named, None: _read_text(jinja_file, files.TEMPLATE_BYTES)}
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        named.update({q.stem: _read_text(q, files.TEMPLATE_BYTES) for q in sorted(extra.glob("*.jinja"))})
    tokenizer = None
    if (folder / "tokenizer.json").exists() or (folder / "tokenizer.model").exists():
        members = [folder / f for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                      "special_tokens_map.json") if (folder / f).exists()]
        tokenizer = _source("hf", folder, members)
    if not named and tokenizer is None:
        raise TargetError(f"{folder}: model folder has no chat template and no tokenizer")
    has_weights = (folder / "config.json").exists() and any(folder.glob("*.safetensors"))
    return _targets(named, folder, special, control, tokenizer, str(folder) if has_weights else None)


def _targets(named: dict[str | None, str], path: Path, special: dict[str, str],
             control: set[str], tokenizer: TokenizerSource | None = None,
             model: str | None = None) -> list[Target]:
    """One target per named template of a model folder or GGUF file (``name#tool_use``);
    just the tokenizer's where there is no template."""
    if not named:
        return [Target(source=None, path=str(path), name=path.name, special_tokens=special,
                       control_tokens=tuple(sorted(control)), tokenizer=tokenizer, model=model)]
    return [
        Target(
            source=src,
            path=str(path),
            name=path.name if tname is None else f"{path.name}#{tname}",
            special_tokens=special,
            control_tokens=tuple(sorted(control)),
            template_name=tname,
            tokenizer=tokenizer,
            model=model,
        )
        for tname, src in named.items()
    ]


def _named_templates(value, where: Path) -> dict[str | None, str]:
    """tokenizer_config's chat_template: one string, or a list of {name, template}."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {None: value}
    if isinstance(value, list):
        # As transformers reads it ({entry["name"]: entry["template"]}): every entry named, and
        # a name given twice would silently drop one of the templates.
        out: dict[str | None, str] = {}
        for i, item in enumerate(value):
            if not (isinstance(item, dict) and isinstance(item.get("template"), str)):
                raise TargetError(f"{where}: chat_template list entries need 'name' and 'template'")
            name = item.get("name")
            if not isinstance(name, str):
                what = "missing" if name is None else f"{_json_type(name)}, not a string"
                raise TargetError(f"{where}: chat_template[{i}].name is {what}")
            key = None if name == "default" else name
            if key in out:
                raise TargetError(f"{where}: chat_template names the template {name!r} twice")
            out[key] = item["template"]
        return out
    raise TargetError(f"{where}: chat_template must be a string or a list, not {_json_type(value)}")


# GGUF token types (llama.cpp's llama_token_type): 3 is CONTROL, 4 USER_DEFINED.
_GGUF_CONTROL = 3


def _load_gguf(p: Path) -> list[Target]:
    """The targets of a GGUF file, read once per process while the file is unchanged."""
    stat = files.check_regular(p)
    return list(_load_gguf_cached(p.resolve(), str(p), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _load_gguf_cached(resolved: Path, path: str, mtime_ns: int, size: int) -> tuple[Target, ...]:
    return tuple(_read_gguf(Path(path)))


def _read_gguf(p: Path) -> list[Target]:
    from .internal.gguf_kv import read_kv

    try:
        kv = read_kv(p)
    except (OSError, ValueError) as exc:
        raise TargetError(f"{p}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None

    def scalar(key):
        value = kv.get(key, (None, None, None))[1]
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    named: dict[str | None, str] = {}
    for key in kv:
        if key == "tokenizer.chat_template":
            named[None] = scalar(key)
        elif key.startswith("tokenizer.chat_template."):
            named[key.removeprefix("tokenizer.chat_template.")] = scalar(key)
    tokens = kv.get("tokenizer.ggml.tokens", (None, None, None))[1]
    if not named and tokens is None:
        raise TargetError(f"{p}: GGUF file has neither a chat template nor a vocabulary")
    if bad := [k for k, v in named.items() if not isinstance(v, str)]:
        raise TargetError(f"{p}: tokenizer.chat_template{'.' + bad[0] if bad[0] else ''} is not a string")
    if tokens is not None and not all(isinstance(t, bytes) for t in tokens):
        raise TargetError(f"{p}: tokenizer.ggml.tokens is not an array of strings")
    n_tokens = 0 if tokens is None else len(tokens)

    def token(i: int) -> str:
        return tokens[i].decode("utf-8", "replace")

    special = {}
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        idx = scalar(f"tokenizer.ggml.{key}_token_id")
        if isinstance(idx, int) and 0 <= idx < n_tokens:
            special[name] = token(idx)
    types = kv.get("tokenizer.ggml.token_type", (None, None, None))[1]
    control = set(special.values())
    if isinstance(types, list) and n_tokens:
        control |= {token(i) for i, kind in enumerate(types[:n_tokens]) if kind == _GGUF_CONTROL}
    tokenizer = _source("gguf", p, [p]) if n_tokens else None
    return _targets(named, p, special, control, tokenizer)
