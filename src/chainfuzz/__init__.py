"""chainfuzz: fuzzing and property-based robustness testing for the local-LLM prompt pipeline.

Public surface: the ``property`` decorator and ``Failure`` for writing invariants, the
``strategies`` module for generating conversations, tokenizer text and token ids, and
``load_target`` and ``Context`` for running a property on a target.
"""

from . import strategies
from .context import Context
from .errors import ChainfuzzError, Failure, Skip, TargetError, UsageError, assume
from .registry import all_properties, property
from .targets import Target, load_target, load_targets

__version__ = "0.1.0"

__all__ = [
    "ChainfuzzError", "Failure", "Skip", "TargetError", "Context", "Target",
    "UsageError", "all_properties", "assume", "load_target", "load_targets", "property",
    "strategies", "__version__",
]
