#!/usr/bin/env bash
# Distracting Control Suite runs (envs/dcs.py), in the positional style of scripts/dmc.sh.
#   bash scripts/dcs.sh TASK MODEL SUFFIX DIFFICULTY SEED [extra --key value flags]
#   TASK        DCS task without the suite prefix, e.g. cheetah_run, walker_walk, cartpole_balance
#   MODEL       DreamerV1 | DreamerV2 | VSG | SVSG (as in scripts/dmc.sh; VSG and SVSG with gate prior 0.4)
#   SUFFIX      experiment name; the run is LOGDIR/dcs_TASK/DIFFICULTY/MODEL_SUFFIX/seed_SEED
#   DIFFICULTY  easy | medium | hard (distraction scale 0.1 / 0.2 / 0.3)
#   SEED        random seed
# Distractions are the config's env.dcs block (all three, static, generated backgrounds); change them with
# flags, e.g. --env.dcs.dynamic true --env.dcs.background_dir ~/DAVIS/JPEGImages/480p.
# LOGDIR (default logs/dcs) sets the root directory, PYTHON (default python) the interpreter.
set -euo pipefail
if [ "$#" -lt 5 ]; then
  echo "usage: bash scripts/dcs.sh TASK MODEL SUFFIX DIFFICULTY SEED [--key value ...]" >&2
  exit 2
fi
TASK=$1 MODEL=$2 SUFFIX=$3 DIFFICULTY=$4 SEED=$5
shift 5
case "$DIFFICULTY" in
  easy|medium|hard) ;;
  *) echo "error: DIFFICULTY '$DIFFICULTY' must be easy, medium or hard" >&2; exit 2 ;;
esac

source "$(dirname "${BASH_SOURCE[0]}")/models.sh"
model_args "$MODEL" 0.4

exec "${PYTHON:-python}" -m vsg.train --configs dmc "${ARGS[@]}" --task "dcs_${TASK}" --env.dcs.difficulty "$DIFFICULTY" \
  --steps 250000 --seed "$SEED" --logdir "${LOGDIR:-logs/dcs}/dcs_${TASK}/${DIFFICULTY}/${MODEL}_${SUFFIX}/seed_${SEED}" "$@"
