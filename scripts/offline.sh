#!/usr/bin/env bash
# Offline mode end to end (vsg.collect, then vsg.offline --offline.stage all): collect episodes of TASK,
# learn latent actions from their observations alone (LAPO), probe them, clone them, decode them with a
# few labelled trajectories and evaluate in the env; the table lands in LOGDIR/results.md.
#   bash scripts/offline.sh TASK REPR SEED [--key value ...]
#   e.g. bash scripts/offline.sh bbs_dense pixels 0 --env.action_repeat 4 --env.time_limit 400 \
#          --env.bbs.max_objects 1 --env.bbs.arena_scale 0.6
#   TASK   env name; bbs_*, fetch_* and grid_* tasks are collected with the scripted expert, others with random actions
#   REPR   the models' input: pixels, state, slots or masks (the last two with --offline.slots.checkpoint;
#          vsg/offline/data.py REPRESENTATIONS lists them)
#   SEED   seed of the collection and of the offline run
# Flags after SEED go to both commands (env settings shape the data; offline.* keys the run).
# EPISODES (default 60), POLICY (expert for bbs_*, fetch_* and grid_*, else random; or checkpoint:LOGDIR),
# NOISE (0.3 with the expert, else 0), WORKERS (2), DATA (logs/offline/data/TASK/seed_SEED), LOGDIR (logs/offline/TASK/REPR/seed_SEED)
# and PYTHON (python) override the defaults. Re-running tops the data up and resumes the run.
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: bash scripts/offline.sh TASK REPR SEED [--key value ...]" >&2
  exit 2
fi
TASK=$1 REPR=$2 SEED=$3
shift 3
PY=${PYTHON:-python}
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "error: SEED '$SEED' must be a whole number" >&2; exit 2; }
"$PY" -c 'import sys; from vsg.offline import data
try:
    data.check_representation(sys.argv[1])
except data.DataError as e:
    sys.exit(f"error: REPR {sys.argv[1]!r}: {e}")' "$REPR"
case "$TASK" in bbs_*|fetch_*|grid_*) DEFAULT_POLICY=expert ;; *) DEFAULT_POLICY=random ;; esac
POLICY=${POLICY:-$DEFAULT_POLICY}
if [ "$POLICY" = expert ]; then DEFAULT_NOISE=0.3; else DEFAULT_NOISE=0; fi
DATA=${DATA:-logs/offline/data/${TASK}/seed_${SEED}}

"$PY" -m vsg.collect --task "$TASK" --policy "$POLICY" --noise "${NOISE:-$DEFAULT_NOISE}" --episodes "${EPISODES:-60}" \
  --workers "${WORKERS:-2}" --outdir "$DATA" --seed "$SEED" "$@"
exec "$PY" -m vsg.offline --configs offline --offline.stage all --offline.data "$DATA" --offline.repr "$REPR" \
  --task "$TASK" --seed "$SEED" --logdir "${LOGDIR:-logs/offline/${TASK}/${REPR}/seed_${SEED}}" "$@"
