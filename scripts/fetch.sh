#!/usr/bin/env bash
# Multi-object Fetch runs (envs/fetch.py), in the positional style of scripts/dmc.sh.
#   bash scripts/fetch.sh TASK MODEL SUFFIX SEED [extra --key value flags]
#   TASK    Fetch task without the fetch_ prefix: {Reach,Push,Pick}{Red,Reddest,Odd,OddGroups}_{k}Distractors_{Sparse,Dense}
#           with k in 0..4 or AtoB (k drawn per episode), e.g. PushRed_0to4Distractors_Dense
#   MODEL   DreamerV1 | DreamerV2 | VSG | SVSG (as in scripts/dmc.sh; VSG and SVSG with gate prior 0.4)
#   SUFFIX  experiment name; the run is LOGDIR/fetch_TASK/MODEL_SUFFIX/seed_SEED
#   SEED    random seed
# Fetch's episodes: action repeat 2 and 50 agent steps for Reach (--env.time_limit 100 env frames), 100 for
# Push and Pick (200 frames). Names the env rejects (e.g. Odd with fewer than 2 distractors) stop the run
# with one line. LOGDIR (default logs/fetch) sets the root directory, PYTHON (default python) the interpreter.
set -euo pipefail
if [ "$#" -lt 4 ]; then
  echo "usage: bash scripts/fetch.sh TASK MODEL SUFFIX SEED [--key value ...]" >&2
  exit 2
fi
TASK=$1 MODEL=$2 SUFFIX=$3 SEED=$4
shift 4

fail() { echo "error: $1" >&2; exit 2; }
case "$TASK" in
  fetch_*) fail "TASK '$TASK': give it without the fetch_ prefix, e.g. ${TASK#fetch_}" ;;
  Reach*_*Distractors_*) FRAMES=100 ;;
  Push*_*Distractors_*|Pick*_*Distractors_*) FRAMES=200 ;;
  *) fail "TASK '$TASK' must be {Reach,Push,Pick}{Red,Reddest,Odd,OddGroups}_{k}Distractors_{Sparse,Dense}, e.g. PushRed_0to4Distractors_Dense" ;;
esac
[[ "$SEED" =~ ^[0-9]+$ ]] || fail "SEED '$SEED' must be a whole number"

source "$(dirname "${BASH_SOURCE[0]}")/models.sh"
model_args "$MODEL" 0.4

exec "${PYTHON:-python}" -m vsg.train --configs dmc "${ARGS[@]}" --task "fetch_${TASK}" --env.action_repeat 2 \
  --env.time_limit "$FRAMES" --steps 250000 --seed "$SEED" \
  --logdir "${LOGDIR:-logs/fetch}/fetch_${TASK}/${MODEL}_${SUFFIX}/seed_${SEED}" "$@"
