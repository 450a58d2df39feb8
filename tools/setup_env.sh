#!/usr/bin/env bash
# Create (or reuse) .venv and install vr1_nb into it, without ever trading a working torch for another.
#  - If the interpreter already imports torch (a GPU box with a CUDA build), the venv sees it through
#    --system-site-packages and pip keeps it: our torch requirement (>=2.4) is already satisfied.
#  - Otherwise torch is installed first, pinned to a CPU build (TORCH_SPEC, default torch==2.13.0, which
#    is a local CPU wheel on our machines), so that `pip install -e .` never resolves a plain `torch`
#    to the multi-GB CUDA build. Set TORCH_INDEX_URL to a CPU wheel index elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import torch" 2>/dev/null; then
    echo "setup: reusing the torch of $PY ($("$PY" -c 'import torch; print(torch.__version__)'))"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "$VENV/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import torch" || { echo "setup: installing ${TORCH_SPEC:-torch==2.13.0} failed; set TORCH_SPEC/TORCH_INDEX_URL to a CPU build you can reach" >&2; exit 1; }
fi
stamp="$VENV/.vr1-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q -e ".[dev${EXTRAS:+,$EXTRAS}]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import vr1_nb, torch, trl, transformers; print('setup: vr1_nb', vr1_nb.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__)"
  touch "$stamp"
fi
