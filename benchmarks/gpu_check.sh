#!/usr/bin/env bash
# The GPU check (issue 16): the method matrix in bfloat16 on random-init models, then
# benchmarks/scale.py on a 1B shape. About 8 minutes on one H100. Needs the repository and a
# Python with weaklift's dependencies (torch, transformers, peft, accelerate, and the ones
# pyproject.toml lists); nothing is downloaded.
#
#   bash benchmarks/gpu_check.sh                 # the whole check
#   bash benchmarks/gpu_check.sh --skip-scale    # the matrix only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
missing=$("$PYTHON" - <<'PY'
import importlib.util
need = ["torch", "transformers", "peft", "accelerate", "tokenizers", "pydantic", "yaml",
        "sklearn", "scipy", "pandas", "matplotlib", "tqdm", "safetensors"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)
if [ -n "$missing" ]; then
    echo "gpu_check: missing Python modules: $missing (install weaklift's dependencies: pip install -e .)" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
