"""chainfuzz: fuzzing and property-based robustness testing for the local-LLM prompt pipeline.

The public surface is what a property author needs, and nothing else:

- writing an invariant: ``property`` (the decorator), ``Failure``, ``Skip``, ``assume``,
  ``Unsupported``, ``each`` (run every implementation, name those failing the same way);
- what a property receives: ``Context`` and the types it hands out (``Target``, ``Chain``,
  ``Tokenizer``, ``TokenizerCrash``, ``Engine``, ``EngineError``, ``EngineCrash``,
  ``Completion``, ``ChatResult``, ``RenderError``, and for output parsers ``Parser``,
  ``ParserCrash``, ``ParsedMessage``, ``Delta``, ``Chunk``, ``Request``);
- generating inputs and reading them: the ``strategies`` and ``messages`` modules, and
  ``schema`` (which inputs are standard under the OpenAI chat schema, which lenient);
- running: ``check`` (search a path, record cases), ``replay`` (re-run one case),
  ``load_target`` / ``load_targets``, ``all_properties``;
- errors: ``ChainfuzzError``, ``TargetError``, ``UsageError``, and ``PropertyFailed`` (what
  a fuzz harness in crash mode raises: one subclass per property).

Every other module is internal (``chainfuzz.internal`` most visibly) and may change. Names are
imported on first use, so ``import chainfuzz`` costs almost nothing (transformers is imported
only when a template is rendered).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> "module:attribute" (a module alone for the public submodules).
_PUBLIC = {
    "property": "chainfuzz.registry:property",
    "all_properties": "chainfuzz.registry:all_properties",
    "Failure": "chainfuzz.errors:Failure",
    "Skip": "chainfuzz.errors:Skip",
    "Unsupported": "chainfuzz.errors:Unsupported",
    "assume": "chainfuzz.errors:assume",
    "each": "chainfuzz.errors:each",
    "ChainfuzzError": "chainfuzz.errors:ChainfuzzError",
    "TargetError": "chainfuzz.errors:TargetError",
    "UsageError": "chainfuzz.errors:UsageError",
    "PropertyFailed": "chainfuzz.errors:PropertyFailed",
    "Context": "chainfuzz.context:Context",
    "Target": "chainfuzz.targets:Target",
    "load_target": "chainfuzz.targets:load_target",
    "load_targets": "chainfuzz.targets:load_targets",
    "Chain": "chainfuzz.chain:Chain",
    "Tokenizer": "chainfuzz.tokenization.base:Tokenizer",
    "TokenizerCrash": "chainfuzz.tokenization.base:TokenizerCrash",
    "Engine": "chainfuzz.engines.base:Engine",
    "EngineError": "chainfuzz.engines.base:EngineError",
    "EngineCrash": "chainfuzz.engines.base:EngineCrash",
    "Completion": "chainfuzz.engines.base:Completion",
    "ChatResult": "chainfuzz.engines.base:ChatResult",
    "RenderError": "chainfuzz.template.render:RenderError",
    "Parser": "chainfuzz.parsers.base:Parser",
    "ParserCrash": "chainfuzz.parsers.base:ParserCrash",
    "ParsedMessage": "chainfuzz.parsers.base:Message",
    "Delta": "chainfuzz.parsers.base:Delta",
    "Chunk": "chainfuzz.parsers.base:Chunk",
    "Request": "chainfuzz.parsers.base:Request",
    "check": "chainfuzz.checker:check",
    "replay": "chainfuzz.replayer:replay",
    "strategies": "chainfuzz.strategies",
    "messages": "chainfuzz.messages",
    "schema": "chainfuzz.schema",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    try:
        path = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'chainfuzz' has no attribute {name!r}") from None
    module, _, attr = path.partition(":")
    value = importlib.import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from . import messages, schema, strategies
    from .chain import Chain
    from .checker import check
    from .context import Context
    from .engines.base import ChatResult, Completion, Engine, EngineCrash, EngineError
    from .parsers.base import Chunk, Delta, Parser, ParserCrash, Request
    from .parsers.base import Message as ParsedMessage
    from .errors import (ChainfuzzError, Failure, PropertyFailed, Skip, TargetError, Unsupported,
                         UsageError, assume, each)
    from .registry import all_properties, property
    from .replayer import replay
    from .targets import Target, load_target, load_targets
    from .template.render import RenderError
    from .tokenization.base import Tokenizer, TokenizerCrash
