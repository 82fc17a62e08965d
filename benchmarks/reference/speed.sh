#!/usr/bin/env bash
# Times the DreamerV2 reference's own Agent.train on a random batch at its dmc_vision sizes (float32,
# graph mode) and prints one JSON line, to sit next to `python -m vsg.bench --configs dmc`:
#   bash benchmarks/reference/speed.sh [--repeats N] [--key value ...]
# Extra flags are the reference's own config keys (e.g. --rssm.deter 128, --precision 16).
# Threads: TF's defaults (all cores) unless OMP_NUM_THREADS / TF_NUM_INTRAOP_THREADS are set.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$HERE/setup.sh"
export TF_USE_LEGACY_KERAS=1 MUJOCO_GL="${MUJOCO_GL:-egl}" TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec "$HERE/.venv/bin/python" "$HERE/speed.py" "$HERE/.venv/dreamerv2-2.2.0/dreamerv2" "$@"
