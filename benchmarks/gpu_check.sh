#!/usr/bin/env bash
# One prepared check for a GPU machine (H100 / H200 class): times every registered method's components at
# batch 1 and batched, eager and compiled (act paths only), on synthetic inputs, and prints a table whose last
# line is the headline. Sized to finish in under 5 minutes there, compiles included (--budget-s).
#
# The GPU machines run Python 3.12 + torch 2.11 with no package index and no gymnasium/MuJoCo/Minari: this
# script installs nothing from the network. If a package it needs is missing, it installs wheels from a local
# folder ($MBENCH_WHEELS, default .whl in the repo root) into a private target and puts that on PYTHONPATH.
# Without CUDA it falls back to the CPU (try it anywhere: benchmarks/gpu_check.sh --budget-s 600).
#
# Usage: benchmarks/gpu_check.sh [gpu_check.py options], e.g.
#   benchmarks/gpu_check.sh --csv "$OUT/gpu_check.csv"
#   benchmarks/gpu_check.sh --methods 'modip,modip:modip.planner.terminal=q' --batch 256
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
else
  PY=python3
fi

missing=$("$PY" - <<'EOF'
import importlib.util
need = ["torch", "numpy", "pandas", "pyarrow"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [[ -n "$missing" ]]; then
  wheels="${MBENCH_WHEELS:-.whl}"
  if compgen -G "$wheels/*.whl" > /dev/null; then
    echo "gpu_check: installing missing [$missing] from local wheels in $wheels (no network)" >&2
    site="${TMPDIR:-/tmp}/mbench-site"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check: missing [$missing] and no wheels in $wheels; put them there (pip download on a machine" \
         "with an index) or expect what needs them to fail" >&2
  fi
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"
