#!/usr/bin/env bash
# Set up everything the project needs in ./.venv: torch, then the project itself with the
# extras named as arguments.
#   bash scripts/install.sh            # the tool
#   bash scripts/install.sh test       # the tool and what the tests need
# The torch VERSION is pinned (TORCH_VERSION, default below); which build comes (CPU or
# CUDA) depends on pip's index: set TORCH_INDEX_URL (passed as --index-url), e.g.
# https://download.pytorch.org/whl/cpu, to choose; otherwise pip's own configuration decides.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=$(IFS=,; echo "$*")
# A venv whose creation was interrupted has a python but no pip: make it again.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  "$PY" -m venv --clear .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned to a version the project is tested with; the project itself only
# asks for torch>=2.2, which this satisfies.
torch_index=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  torch_index=(--index-url "$TORCH_INDEX_URL")
fi
.venv/bin/python -c "import torch" 2>/dev/null \
  || .venv/bin/python -m pip install --quiet "${torch_index[@]}" "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
echo "installed into .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
