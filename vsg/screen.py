"""Screen world-model variants on a fixed replay: `python -m vsg.screen --replay DIR --updates N [config flags]`.

Trains only the world model of the configured agent (e.g. `--configs dmc small --core svsg --gate.prior
0.9`) for N updates on batches from an existing replay directory (read, never written), then prints
one JSON line: the loss terms averaged over the last 100 updates and vsg.diagnose's measurements on a
batch of the same replay. Every variant sees the same data, so minutes of one core compare world
models that whole learning runs (an hour each, with data that depends on the policy) cannot.
"""
import argparse
import json
import pathlib
import sys
import time

import numpy as np

from common import episodes
from vsg import build, diagnose

# Besides one `<key>_loss` per decoded observation key.
LOGGED = ('reward_loss', 'kl', 'gate_open_mean')


def main(argv=None):
    # No abbreviations: every other flag is a config flag (e.g. --replay.capacity is not --replay).
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument('--replay', required=True, help='a replay directory of a run (its episodes are only read)')
    parser.add_argument('--updates', type=int, default=1000)
    parser.add_argument('--context', type=int, default=5, help="vsg.diagnose's observed steps")
    parser.add_argument('--horizon', type=int, default=15, help="vsg.diagnose's imagined steps")
    args, flags = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.updates < 1:
        sys.exit(f'error: --updates={args.updates} must be at least 1')
    directory = pathlib.Path(args.replay).expanduser()
    if not episodes.count(directory):
        sys.exit(f'error: --replay {directory} holds no episode files (*.npz); give the replay/ folder of a run')
    config = build.parse(flags, need_logdir=False)
    print(json.dumps({'flags': ' '.join(flags), **screen(config, directory, args.updates, args.context, args.horizon)}))


def screen(config, directory, updates, context, horizon):
    env = build.make_envs(config, 1, config.seed)
    try:
        agent, _ = build.make_agent(config, env[0])  # fresh: no logdir to restore from
    finally:
        env[0].close()
    replay = build.load_replay(config, directory)
    start, recent = time.monotonic(), {}
    logged = (*LOGGED, *(f'{key}_loss' for key in agent.wm.decoder.keys))
    for update in range(updates):
        metrics = agent.train_world_model(replay.sample(config.batch_size, config.batch_length))
        if update >= updates - 100:
            for key in logged:
                if key in metrics:
                    recent.setdefault(key, []).append(float(metrics[key]))
    seconds = time.monotonic() - start
    try:
        batch = replay.sample(32, context + horizon)
    except ValueError as e:
        sys.exit(f'error: {e}')
    return {
        'updates': updates, 'seconds': round(seconds),
        **{key: round(float(np.mean(values)), 4) for key, values in recent.items()},
        **diagnose.diagnose(agent, batch, context, horizon)}


if __name__ == '__main__':
    main()
