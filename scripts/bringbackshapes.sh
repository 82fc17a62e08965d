#!/usr/bin/env bash
# Positional interface of the VSG repository's scripts/bringbackshapes.sh, mapped onto our flags.
#   bash scripts/bringbackshapes.sh MODEL SUFFIX ENV_TYPE TL MAX_DISTRACTORS MAX_OBJECTS VARIABLE_NUM_OBJECTS \
#     VARIABLE_NUM_DISTRACTORS VARIABLE_GOAL_POSITION AGENT_VIEW_SIZE ARENA_SCALE GATE_PRIOR SEED [--key value ...]
#   e.g. bash scripts/bringbackshapes.sh VSG baseline sparse 3000 0 5 False False False 125 1.0 0.4 1
#   MODEL              DreamerV1 | DreamerV2 | VSG | SVSG (as in scripts/dmc.sh)
#   SUFFIX             experiment name; the run is LOGDIR/bbs_ENV_TYPE/MODEL_SUFFIX/seed_SEED
#   ENV_TYPE           sparse | dense (reward)
#   TL                 time limit in env frames (the paper: 3000)
#   MAX_DISTRACTORS    brownian distractors, >= 0
#   MAX_OBJECTS        shapes to bring back, 1..5
#   VARIABLE_NUM_OBJECTS, VARIABLE_NUM_DISTRACTORS, VARIABLE_GOAL_POSITION   True | False
#   AGENT_VIEW_SIZE    half side in px of the agent's square view (the paper: 125)
#   ARENA_SCALE        arena size factor, > 0 (the view stays the same size)
#   GATE_PRIOR         Bernoulli gate prior of VSG/SVSG, in (0, 1) (unused by the Dreamer models)
#   SEED               random seed
# Settings are the `bringbackshapes` named config (configs.yaml). LOGDIR (default logs/bbs) sets the
# root directory, PYTHON (default python) the interpreter; extra flags override any key.
set -euo pipefail
if [ "$#" -lt 13 ]; then
  echo "usage: bash scripts/bringbackshapes.sh MODEL SUFFIX ENV_TYPE TL MAX_DISTRACTORS MAX_OBJECTS" \
    "VARIABLE_NUM_OBJECTS VARIABLE_NUM_DISTRACTORS VARIABLE_GOAL_POSITION AGENT_VIEW_SIZE ARENA_SCALE GATE_PRIOR SEED" \
    "[--key value ...]" >&2
  exit 2
fi
MODEL=$1 SUFFIX=$2 ENV_TYPE=$3 TL=$4 MAX_DISTRACTORS=$5 MAX_OBJECTS=$6 VARIABLE_NUM_OBJECTS=$7
VARIABLE_NUM_DISTRACTORS=$8 VARIABLE_GOAL_POSITION=$9 AGENT_VIEW_SIZE=${10} ARENA_SCALE=${11} GATE_PRIOR=${12} SEED=${13}
shift 13

fail() { echo "error: $1" >&2; exit 2; }
case "$ENV_TYPE" in sparse|dense) ;; *) fail "ENV_TYPE '$ENV_TYPE' must be sparse or dense" ;; esac
for pair in "TL=$TL" "MAX_DISTRACTORS=$MAX_DISTRACTORS" "MAX_OBJECTS=$MAX_OBJECTS" "AGENT_VIEW_SIZE=$AGENT_VIEW_SIZE" "SEED=$SEED"; do
  [[ "${pair#*=}" =~ ^[0-9]+$ ]] || fail "${pair%%=*} '${pair#*=}' must be a whole number"
done
for pair in "VARIABLE_NUM_OBJECTS=$VARIABLE_NUM_OBJECTS" "VARIABLE_NUM_DISTRACTORS=$VARIABLE_NUM_DISTRACTORS" \
            "VARIABLE_GOAL_POSITION=$VARIABLE_GOAL_POSITION"; do
  [[ "${pair#*=}" =~ ^([Tt]rue|[Ff]alse)$ ]] || fail "${pair%%=*} '${pair#*=}' must be True or False"
done
awk -v s="$ARENA_SCALE" 'BEGIN { exit !(s + 0 == s && s > 0) }' || fail "ARENA_SCALE '$ARENA_SCALE' must be a number > 0, e.g. 1.0"
source "$(dirname "${BASH_SOURCE[0]}")/models.sh"
model_args "$MODEL" "$GATE_PRIOR"

# Value ranges (MAX_OBJECTS 1..5, TL >= 1, ...) are checked by the env, which names what is allowed.
exec "${PYTHON:-python}" -m vsg.train --configs bringbackshapes "${ARGS[@]}" --task "bbs_${ENV_TYPE}" \
  --env.time_limit "$TL" --env.bbs.max_distractors "$MAX_DISTRACTORS" --env.bbs.max_objects "$MAX_OBJECTS" \
  --env.bbs.variable_num_objects "$VARIABLE_NUM_OBJECTS" --env.bbs.variable_num_distractors "$VARIABLE_NUM_DISTRACTORS" \
  --env.bbs.variable_goal_position "$VARIABLE_GOAL_POSITION" --env.bbs.agent_view_size "$AGENT_VIEW_SIZE" \
  --env.bbs.arena_scale "$ARENA_SCALE" --seed "$SEED" \
  --logdir "${LOGDIR:-logs/bbs}/bbs_${ENV_TYPE}/${MODEL}_${SUFFIX}/seed_${SEED}" "$@"
