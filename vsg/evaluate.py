"""Evaluation only: `python -m vsg.evaluate --logdir DIR [--episodes N] [--video FILE]`.

Loads the run's saved config and checkpoint, runs greedy (actor mode) episodes on fresh envs,
prints the returns as JSON and writes the first episode as a GIF. `--attention FILE` also writes, for a
core whose feature attends over parts (the slot core), where the agent looks in that episode: the frame,
the frame lit by the attention-weighted slot masks, and each slot with a bar as long as its weight.
"""
import argparse
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

from common import config as config_lib
from common import driver as driver_lib
from common import video
from vsg import build
from vsg.slots import evaluation


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--logdir', required=True, help='run directory holding config.yaml and checkpoint.npz')
    parser.add_argument('--episodes', type=int, default=5)
    parser.add_argument('--seed', type=int, default=None, help='env seed (default: the run seed + 20000)')
    parser.add_argument('--video', default=None, help='GIF path (default: LOGDIR/eval.gif)')
    parser.add_argument('--attention', default=None,
                        help="GIF path for the first episode's attention video (cores that attend over slots)")
    parser.add_argument('--policy', choices=('agent', 'random', 'zero'), default='agent',
                        help='random: uniform actions; zero: the action 0 at every step (continuous actions); '
                             'the baselines for learning curves (need no checkpoint)')
    args = parser.parse_args(argv)
    logdir = pathlib.Path(args.logdir).expanduser()
    for name in ('config.yaml',) + ((build.CHECKPOINT,) if args.policy == 'agent' else ()):
        if not (logdir / name).exists():
            sys.exit(f'error: {logdir / name} does not exist; --logdir must be a run directory written by vsg.train')
    if args.attention and args.policy != 'agent':
        sys.exit(f'error: --attention shows the agent\'s attention; it cannot go with --policy {args.policy}')
    if args.episodes < 1:
        sys.exit(f'error: --episodes={args.episodes} must be at least 1')
    try:
        config = config_lib.load_run(logdir)
    except config_lib.ConfigError as e:
        sys.exit(f'error: {e}')
    seed = config.seed + 20_000 if args.seed is None else args.seed
    env = build.make_envs(config, 1, seed)
    try:
        counters = {}
        if args.policy == 'agent':
            agent, counters = build.make_agent(config, env[0], logdir)
            policy = build.agent_policy(agent, 'eval', 1)
            if args.attention and agent.wm.core.attention(agent.wm.core.initial(1)) is None:
                sys.exit(f'error: --attention needs a core whose feature attends over slots (slot); '
                         f'this run\'s core is {config.core}')
        elif args.policy == 'random':
            policy = driver_lib.random_policy(env[0].act_space['action'], np.random.default_rng(seed))
        else:
            try:
                policy = driver_lib.zero_policy(env[0].act_space['action'])
            except ValueError as e:
                sys.exit(f'error: --policy zero: {e}')
        episodes = []
        driver = driver_lib.Driver(env)
        driver.on_episode(lambda episode, worker: episodes.append(episode))
        driver(policy, episodes=args.episodes)
    finally:
        env[0].close()
    returns = [float(ep['reward'].sum()) for ep in episodes[:args.episodes]]
    path = pathlib.Path(args.video) if args.video else logdir / 'eval.gif'
    key = video.frames_key(env[0].obs_space)
    if key is not None:
        video.write_gif(path, episodes[0][key])
    if args.attention:
        write_attention(agent, episodes[0], key, args.attention)
    print(json.dumps({
        'task': config.task, 'policy': args.policy, 'step': counters.get('step', 0), 'episodes': len(returns),
        'returns': returns, 'mean_return': float(np.mean(returns)),
        'video': str(path) if key is not None else None}))


def write_attention(agent, episode, key, path):
    """The attention video of one episode (vsg.slots.evaluation.attention_video) as a GIF at `path`."""
    data = {name: tf.constant(episode[name][None]) for name in (*agent.wm.encoder.keys, 'is_first')}
    data['action'] = tf.constant(episode['action'][None], tf.float32)
    weights, masks = agent.attention(data)
    video.write_gif(path, evaluation.attention_video(episode[key], masks[0].numpy(), weights[0].numpy()), fps=10)


if __name__ == '__main__':
    main()
