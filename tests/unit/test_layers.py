"""The import rules of ARCHITECTURE.md, checked on the source: each module imports only its own
tier or lower ones (imports inside functions included), the built-in properties use only the
public surface, and no module-level imports form a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# ARCHITECTURE.md's tiers, lowest first: a module's tier is that of its longest prefix here.
TIERS = [
    ["chainfuzz.errors", "chainfuzz.messages", "chainfuzz.schema", "chainfuzz.casefile",
     "chainfuzz.strategies",
     "chainfuzz.internal.lazy", "chainfuzz.internal.gguf_kv", "chainfuzz.internal.worker",
     "chainfuzz.internal.reduce", "chainfuzz.internal"],
    ["chainfuzz.kinds", "chainfuzz.registry"],
    ["chainfuzz.template", "chainfuzz.tokenization", "chainfuzz.engines", "chainfuzz.parsers", "chainfuzz.chain",
     "chainfuzz.targets", "chainfuzz.corpus"],
    ["chainfuzz.context", "chainfuzz.internal.runner", "chainfuzz.cases", "chainfuzz.report"],
    ["chainfuzz.checker", "chainfuzz.replayer", "chainfuzz.sweep", "chainfuzz.fuzz", "chainfuzz.campaign"],
    ["chainfuzz.cli", "chainfuzz.__main__", "_chainfuzz_pytestplugin", "chainfuzz"],
]
PUBLIC = {"chainfuzz", "chainfuzz.strategies", "chainfuzz.messages", "chainfuzz.schema"}
BUILTINS = "chainfuzz.properties"


def modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path, known: set[str], *, top_level_only: bool = False) -> set[str]:
    """The chainfuzz modules ``name`` imports (outside ``if TYPE_CHECKING:`` blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()

    def visit(node, top: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom):
            base = (".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level else node.module or "")
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            is_scope = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if top and top_level_only and is_scope:
                continue
            visit(child, top)

    visit(tree, True)
    return {m for m in out if m.split(".")[0] in ("chainfuzz", "_chainfuzz_pytestplugin") and m != name}


def tier(name: str) -> int:
    best, level = -1, -1
    for i, prefixes in enumerate(TIERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    assert level >= 0, f"{name} is in no tier of ARCHITECTURE.md"
    return level


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports that break the rules, as "importer -> imported: why"."""
    out = []
    for src, targets in edges.items():
        for dst in targets:
            if src.startswith(BUILTINS + "."):
                if dst not in PUBLIC and not dst.startswith(BUILTINS + "."):
                    out.append(f"{src} -> {dst}: built-in properties use only the public surface")
            elif dst != BUILTINS and tier(dst) > tier(src):
                out.append(f"{src} -> {dst}: imports upwards (tier {tier(src)} -> {tier(dst)})")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    return found


def test_no_module_imports_upwards_and_built_in_properties_use_the_public_surface():
    known = modules()
    edges = {name: imports(name, path, set(known)) for name, path in known.items()}
    assert violations(edges) == []


def test_module_level_imports_have_no_cycle():
    known = modules()
    edges = {name: {d for d in imports(name, path, set(known), top_level_only=True) if d in known}
             for name, path in known.items()}
    # A package imports its own modules by design (its __init__ re-exports them).
    edges = {n: {d for d in ds if not d.startswith(n + ".")} for n, ds in edges.items()}
    assert cycles(edges) == []


def test_a_planted_upward_import_and_a_private_import_in_a_property_are_caught():
    planted = {"chainfuzz.errors": {"chainfuzz.context"},
               "chainfuzz.properties.mine": {"chainfuzz.template.render"},
               "chainfuzz.context": {"chainfuzz.errors"}}
    found = violations(planted)
    assert len(found) == 2
    assert any("imports upwards" in v for v in found) and any("public surface" in v for v in found)
    assert cycles({"a": {"b"}, "b": {"a"}}) and not cycles({"a": {"b"}, "b": set()})
