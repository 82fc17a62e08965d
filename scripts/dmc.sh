#!/usr/bin/env bash
# Positional interface of the VSG repository's scripts/dmc.sh, mapped onto our flags.
#   bash scripts/dmc.sh TASK MODEL SUFFIX GATE_PRIOR DIM SEED [extra --key value flags]
#   TASK        DMC task without the suite prefix, e.g. walker_walk
#   MODEL       DreamerV1 (Gaussian RSSM) | DreamerV2 (discrete 32x32 RSSM)
#               | VSG (discrete RSSM with sparse binary gates) | SVSG (gated Gaussian latents, no deterministic path)
#   SUFFIX      experiment name; the run is LOGDIR/dmc_TASK/MODEL_SUFFIX/seed_SEED
#   GATE_PRIOR  Bernoulli gate prior of VSG/SVSG, in (0, 1) (unused by the Dreamer models)
#   DIM         size of the deterministic state and hidden layers; SVSG: of its latent state and hidden layers
#   SEED        random seed
# LOGDIR (default logs/dmc) sets the root directory, PYTHON (default python) the interpreter.
# 250k agent steps = the reference's 500k frames.
set -euo pipefail
if [ "$#" -lt 6 ]; then
  echo "usage: bash scripts/dmc.sh TASK MODEL SUFFIX GATE_PRIOR DIM SEED [--key value ...]" >&2
  exit 2
fi
TASK=$1 MODEL=$2 SUFFIX=$3 GATE_PRIOR=$4 DIM=$5 SEED=$6
shift 6

source "$(dirname "${BASH_SOURCE[0]}")/models.sh"
model_args "$MODEL" "$GATE_PRIOR" "$DIM"

exec "${PYTHON:-python}" -m vsg.train --configs dmc "${ARGS[@]}" --task "dmc_${TASK}" --steps 250000 --seed "$SEED" \
  --logdir "${LOGDIR:-logs/dmc}/dmc_${TASK}/${MODEL}_${SUFFIX}/seed_${SEED}" "$@"
