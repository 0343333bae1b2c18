#!/usr/bin/env bash
# The GPU check of issue 18 (see scripts/gpu_check.py): prints one JSON line.
#   bash scripts/gpu_check.sh             # on a machine with a GPU (device tool), < 10 min
#   bash scripts/gpu_check.sh --dry-run   # the same code paths on the CPU, tiny sizes
# Sets up the venv first if needed (make's stamp), as make test does.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.installed ]; then
  make .venv/.installed >&2
fi
exec .venv/bin/python scripts/gpu_check.py "$@"
