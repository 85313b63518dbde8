#!/usr/bin/env bash
# Set up a virtual environment in .venv with everything stardag and its tests need.
# torch comes first, pinned, so that pip takes the CPU build rather than a CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,gguf,lora]"
