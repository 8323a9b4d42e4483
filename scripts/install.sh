#!/usr/bin/env bash
# Set up everything the project needs in ./.venv: torch (CPU build pinned for this
# machine's local wheel), then the project itself with the extras named as arguments.
#   bash scripts/install.sh            # the tool
#   bash scripts/install.sh test       # the tool and what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=$(IFS=,; echo "$*")
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build; the
# project itself only asks for torch>=2.2, which this satisfies.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
echo "installed into .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
