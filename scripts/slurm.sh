#!/usr/bin/env bash
# A multi-worker run under SLURM: one task per machine, each training with --strategy multi_worker on
# its local GPUs (docs/training.md, "Several devices and machines").
#   sbatch --nodes 2 --ntasks-per-node 1 --gpus-per-node 4 scripts/slurm.sh --configs dmc --task dmc_walker_walk \
#     --logdir /shared/runs/walker --batch_size 64
# The flags go to vsg.train unchanged and must be the same on every task (the workers refuse otherwise);
# --logdir must be on a filesystem every node sees: the chief (task 0) writes there and every worker
# restores its checkpoint from there. PORT (default 12345) is each task's collective port, PYTHON
# (default python) the interpreter.
set -euo pipefail
if [ -z "${SLURM_JOB_NODELIST:-}" ]; then
  echo "usage: sbatch [--nodes N --ntasks-per-node 1 ...] scripts/slurm.sh [--key value ...]  (run under SLURM)" >&2
  exit 2
fi
PORT=${PORT:-12345}
# One TF_CONFIG per task, set inside the task (srun), where SLURM_PROCID is the task's own index.
exec srun bash -c '
  set -euo pipefail
  workers=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/.*/\"&:'"$PORT"'\"/" | paste -sd, -)
  export TF_CONFIG="{\"cluster\": {\"worker\": [$workers]}, \"task\": {\"type\": \"worker\", \"index\": $SLURM_PROCID}}"
  exec "${PYTHON:-python}" -m vsg.train --strategy multi_worker "$@"
' slurm-task "$@"
