#!/usr/bin/env bash
# DreamerV2 2.2.0 (patched, see docs/results/benchmarks.md) on dmc_cartpole_balance at the sizes, schedule, action
# repeat and frame budget of `python -m vsg.train --configs dmc small`:
#   bash benchmarks/reference/learn.sh SEED [LOGDIR] [--key value ...]
# LOGDIR defaults to logs/reference/dmc_cartpole_balance/seed_SEED (under the repo root); extra flags
# go to the reference's train.py and override the ones below (e.g. --steps 300 for a smoke run).
#
# Units, read off the reference's train.py: its counter is `step = Counter(replay total_steps)`,
# incremented by `train_driver.on_step` once per train-env step, and one env step of its DMC wrapper
# (common/envs.py) is `action_repeat` physics frames. `steps`, `prefill`, `train_every`,
# `eval_every` and `log_every` are all compared with that counter, so they count agent steps, as
# ours do: no conversion. `time_limit` is counted by common.TimeLimit per wrapped env step, so it is
# agent steps too: 1000 frames / 8 = 125 (DMC also ends the episode itself after 1000 frames).
# Its logger is built with `multiplier=config.action_repeat`, so `step` in LOGDIR/metrics.jsonl is
# env frames. Its `seed` key is never read: runs are unseeded; SEED only names the logdir.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SEED="${1:?usage: learn.sh SEED [LOGDIR] [--key value ...]}"; shift
LOGDIR="$ROOT/logs/reference/dmc_cartpole_balance/seed_$SEED"
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then LOGDIR="$1"; shift; fi

bash "$HERE/setup.sh"
# Keras 2 API via tf-keras; MuJoCo renders in the training process, which has TF loaded: softpipe.
export TF_USE_LEGACY_KERAS=1 MUJOCO_GL=egl GALLIUM_DRIVER=softpipe
# One thread per run by default, so two seeds share 2 cores; set them to override.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-1}" \
  TF_NUM_INTEROP_THREADS="${TF_NUM_INTEROP_THREADS:-1}"

# Run train.py as `python train.py` would (its folder first on sys.path, so its `common` and not the
# project's is imported), then leave with os._exit: a normal interpreter exit aborts in Mesa's
# teardown ("free(): invalid pointer", Mesa's and TF's LLVM clash) after the run has finished.
exec "$HERE/.venv/bin/python" -c 'import os, runpy, sys; sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(sys.argv[0]); runpy.run_path(sys.argv[0], run_name="__main__")
sys.stdout.flush(); sys.stderr.flush(); os._exit(0)' \
  "$HERE/.venv/dreamerv2-2.2.0/dreamerv2/train.py" \
  --configs defaults dmc_vision --logdir "$LOGDIR" --seed "$SEED" --precision 32 --jit True \
  --task dmc_cartpole_balance --action_repeat 8 --time_limit 125 --render_size 64 64 \
  --steps 9000 --prefill 1000 --pretrain 100 --train_every 3 --train_steps 1 \
  --eval_every 750 --eval_eps 2 --log_every 250 \
  --dataset.batch 8 --dataset.length 32 --replay.minlen 32 --replay.maxlen 32 \
  --rssm.deter 128 --rssm.hidden 128 --rssm.stoch 16 --rssm.discrete 16 \
  --encoder.cnn_depth 16 --decoder.cnn_depth 16 \
  --reward_head.layers 2 --reward_head.units 128 --actor.layers 2 --actor.units 128 \
  --critic.layers 2 --critic.units 128 --imag_horizon 15 \
  --model_opt.lr 3e-4 --kl.free 1.0 --actor_opt.lr 8e-5 --critic_opt.lr 8e-5 --actor_ent 1e-4 \
  --discount 0.99 --discount_lambda 0.95 "$@"
