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

if ! awk -v p="$GATE_PRIOR" 'BEGIN { exit !(p + 0 == p && p > 0 && p < 1) }'; then
  echo "error: GATE_PRIOR '$GATE_PRIOR' must be a number in (0, 1), e.g. 0.4" >&2
  exit 2
fi
GATE=(--gate.prior "$GATE_PRIOR" --gate.scale 0.1)
case "$MODEL" in
  DreamerV1) ARGS=(--configs dmc --rssm.deter "$DIM" --rssm.hidden "$DIM" --rssm.discrete 0) ;;
  DreamerV2) ARGS=(--configs dmc --rssm.deter "$DIM" --rssm.hidden "$DIM" --rssm.discrete 32) ;;
  VSG) ARGS=(--configs dmc vsg --rssm.deter "$DIM" --rssm.hidden "$DIM" --rssm.discrete 32 "${GATE[@]}") ;;
  SVSG) ARGS=(--configs dmc svsg --svsg.stoch "$DIM" --svsg.hidden "$DIM" "${GATE[@]}") ;;
  *) echo "error: MODEL '$MODEL' is not supported; choose DreamerV1, DreamerV2, VSG or SVSG" >&2; exit 2 ;;
esac

exec "${PYTHON:-python}" -m vsg.train "${ARGS[@]}" --task "dmc_${TASK}" --steps 250000 --seed "$SEED" \
  --logdir "${LOGDIR:-logs/dmc}/dmc_${TASK}/${MODEL}_${SUFFIX}/seed_${SEED}" "$@"
