"""Loading check targets: a ``.jinja`` file, a Hugging Face model folder, or a ``.gguf`` file.

A target is the template source plus what a server passes beside it (``bos_token``,
``eos_token``, the other special tokens) and the strings the tokenizer treats as control
tokens. Anything unreadable raises `TargetError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import TargetError

# Keys of tokenizer_config.json that transformers passes to templates as special tokens.
SPECIAL_TOKEN_KEYS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)


# A bare .jinja file names no tokens, but servers always pass bos_token and eos_token, and
# many templates fail without them. These stand in (llama.cpp's template tests use the same).
BARE_TEMPLATE_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


@dataclass(frozen=True)
class TemplateTarget:
    """A chat template and the tokens rendered beside it."""

    source: str
    path: str
    name: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    control_tokens: tuple[str, ...] = ()
    template_name: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def fingerprint(self) -> dict:
        """What a crash record stores to identify the target across machines and versions."""
        return {
            "kind": "template",
            "path": self.path,
            "name": self.name,
            "template_name": self.template_name,
            "sha256": self.sha256,
        }


def load_targets(path: str | Path) -> list[TemplateTarget]:
    """Every template target at ``path``: one per named template in a model folder."""
    p = Path(path)
    if not p.exists():
        raise TargetError(f"{path}: no such file or directory")
    if p.is_dir():
        if (p / "tokenizer_config.json").exists() or (p / "chat_template.jinja").exists():
            return _load_hf_folder(p)
        templates = sorted(q for q in p.iterdir() if q.suffix in (".jinja", ".gguf"))
        if not templates:
            raise TargetError(f"{path}: not a model folder and holds no .jinja or .gguf files")
        return [t for q in templates for t in load_targets(q)]
    if p.suffix == ".gguf":
        return _load_gguf(p)
    if p.name == "tokenizer_config.json":
        return _load_hf_folder(p.parent)
    return [TemplateTarget(source=_read_text(p), path=str(path), name=p.name,
                           special_tokens=dict(BARE_TEMPLATE_TOKENS))]


def load_target(path: str | Path, template_name: str | None = None) -> TemplateTarget:
    """The one target at ``path`` (the named template where a folder has several)."""
    targets = load_targets(path)
    for t in targets:
        if t.template_name == template_name:
            return t
    if template_name is None:
        return targets[0]
    names = ", ".join(str(t.template_name) for t in targets)
    raise TargetError(f"{path}: no chat template named {template_name!r} (has: {names})")


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TargetError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TargetError(f"{p}: cannot read: {exc.strerror}") from None


def _read_json(p: Path) -> dict:
    try:
        data = json.loads(_read_text(p))
    except json.JSONDecodeError as exc:
        raise TargetError(f"{p}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{p}: expected a JSON object")
    return data


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json stores it: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _field(data: dict, key: str, kind: type, where: Path):
    """``data[key]`` if present and of ``kind``; a `TargetError` naming the file otherwise."""
    value = data.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        expected = "a JSON object" if kind is dict else "a JSON array"
        raise TargetError(f"{where}: {key} must be {expected}, not {type(value).__name__}")
    return value


def _load_hf_folder(folder: Path) -> list[TemplateTarget]:
    config_path = folder / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.exists() else {}
    special = {k: t for k in SPECIAL_TOKEN_KEYS if (t := _token_text(config.get(k)))}
    control = set(special.values())
    for tok in _field(config, "added_tokens_decoder", dict, config_path).values():
        if isinstance(tok, dict) and tok.get("special") and (t := _token_text(tok)):
            control.add(t)
    for t in _field(config, "additional_special_tokens", list, config_path):
        if text := _token_text(t):
            control.add(text)
    tok_json = folder / "tokenizer.json"
    if tok_json.exists():
        for tok in _field(_read_json(tok_json), "added_tokens", list, tok_json):
            if isinstance(tok, dict) and tok.get("special") and isinstance(tok.get("content"), str):
                control.add(tok["content"])

    named = _named_templates(config.get("chat_template"), config_path)
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.exists():
        named = {**named, None: _read_text(jinja_file)}
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        named.update({q.stem: _read_text(q) for q in sorted(extra.glob("*.jinja"))})
    if not named:
        raise TargetError(f"{folder}: model folder has no chat template")
    return _targets(named, folder, special, control)


def _targets(named: dict[str | None, str], path: Path, special: dict[str, str],
             control: set[str]) -> list[TemplateTarget]:
    """One target per named template of a model folder or GGUF file (``name#tool_use``)."""
    return [
        TemplateTarget(
            source=src,
            path=str(path),
            name=path.name if tname is None else f"{path.name}#{tname}",
            special_tokens=special,
            control_tokens=tuple(sorted(control)),
            template_name=tname,
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
        out: dict[str | None, str] = {}
        for item in value:
            if not (isinstance(item, dict) and isinstance(item.get("template"), str)):
                raise TargetError(f"{where}: chat_template list entries need 'name' and 'template'")
            name = item.get("name")
            out[None if name == "default" else name] = item["template"]
        return out
    raise TargetError(f"{where}: chat_template must be a string or a list, not {type(value).__name__}")


# GGUF token types (llama.cpp's llama_token_type): 3 is CONTROL, 4 USER_DEFINED.
_GGUF_CONTROL = 3


def _load_gguf(p: Path) -> list[TemplateTarget]:
    try:
        from gguf import GGUFReader

        reader = GGUFReader(p)
    except Exception as exc:  # the reader raises ValueError, struct.error, OSError...
        raise TargetError(f"{p}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None

    def scalar(key):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    named: dict[str | None, str] = {}
    for key in reader.fields:
        if key == "tokenizer.chat_template":
            named[None] = scalar(key)
        elif key.startswith("tokenizer.chat_template."):
            named[key.removeprefix("tokenizer.chat_template.")] = scalar(key)
    if not named:
        raise TargetError(f"{p}: GGUF file has no tokenizer.chat_template")
    if bad := [k for k, v in named.items() if not isinstance(v, str)]:
        raise TargetError(f"{p}: tokenizer.chat_template{'.' + bad[0] if bad[0] else ''} is not a string")
    # Decode only the tokens needed: a vocabulary holds up to ~260k strings.
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_tokens = 0 if tokens is None else len(tokens.data)

    def token(i: int) -> str:
        return bytes(tokens.parts[tokens.data[i]]).decode("utf-8", "replace")

    special = {}
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"),
                      ("padding", "pad_token")):
        idx = scalar(f"tokenizer.ggml.{key}_token_id")
        if isinstance(idx, int) and 0 <= idx < n_tokens:
            special[name] = token(idx)
    types = reader.fields.get("tokenizer.ggml.token_type")
    control = set(special.values())
    if types is not None and n_tokens:
        kinds = np.concatenate([types.parts[i] for i in types.data])
        control |= {token(int(i)) for i in np.flatnonzero(kinds[:n_tokens] == _GGUF_CONTROL)}
    return _targets(named, p, special, control)
