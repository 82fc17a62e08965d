"""Watch an env as a GIF, or compare the scripted expert with random actions.

  python -m vsg.show --task bbs_sparse --policy expert --seed 0 --steps 300 --out bbs.gif --max_objects 2
  python -m vsg.show --task bbs_dense --report 20 --max_objects 2 --time_limit 1000

The GIF shows one episode (at most --steps agent steps): for suites that can draw their whole arena
(bbs), the arena beside the agent's view, both --height px high; otherwise the agent's view alone.
An --out ending in .png writes --frames frames of the episode, evenly spaced, stacked top to bottom.
--report N runs N episodes (seeds 0..N-1) of the expert and of uniform random actions and prints one
JSON line: mean and std of the return and the success rate of each. Suite settings are plain
options (--max_objects 2 --variable_goal_position true); values are ints, floats or true/false.
The env runs in this process; nothing here imports TensorFlow.
"""

import argparse
import json
import pathlib
import sys

import numpy as np
from PIL import Image

import envs
from common import video


class _Parser(argparse.ArgumentParser):

    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _setting(text):
    """A suite setting from the command line: true/false, an int, a float, or else the text."""
    lowered = text.strip().lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parser():
    parser = _Parser(prog='python -m vsg.show', description=__doc__.split('\n\n')[0],
                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', required=True, help='env name, e.g. bbs_sparse, bbs_dense, grid_reach')
    parser.add_argument('--policy', choices=('expert', 'random'), default='random',
                        help="actions of the GIF's episode: the suite's scripted expert (bbs, fetch, grid) or uniform random")
    parser.add_argument('--seed', type=int, default=0, help="the GIF episode's env seed (and the random policy's)")
    parser.add_argument('--steps', type=int, default=300,
                        help='agent steps at most in the GIF (the episode may end sooner)')
    parser.add_argument('--out', default=None, help='GIF (or PNG frame strip) path to write (needed unless --report)')
    parser.add_argument('--frames', type=int, default=4, help='frames in a PNG strip')
    parser.add_argument('--size', type=int, default=64, help="side in px of the agent's view (the obs image)")
    parser.add_argument('--height', type=int, default=256, help='height in px of the GIF')
    parser.add_argument('--fps', type=int, default=15, help='GIF frames per second')
    parser.add_argument('--action_repeat', type=int, default=4, help='env frames per agent step')
    parser.add_argument('--time_limit', type=int, default=3000, help='env frames per episode at most')
    parser.add_argument('--report', type=int, default=None, metavar='N',
                        help='run N episodes of the expert and of random actions; print their returns as JSON')
    suites = {}  # setting -> the suites that take it (dmc and dcs share `camera`)
    for suite, (_, names) in envs.SUITES.items():
        for name in names:
            suites.setdefault(name, []).append(suite)
    for name, owners in suites.items():
        parser.add_argument(f'--{name}', type=_setting, default=None, help=f"{', '.join(owners)} setting (envs.SUITES)")
    return parser, suites


def main(argv=None):
    parser, suites = _parser()
    try:
        args = parser.parse_args(argv)
        for name in ('steps', 'size', 'height', 'fps', 'frames'):
            if getattr(args, name) < 1:
                parser.error(f'--{name}={getattr(args, name)} must be at least 1')
        if args.report is not None and args.report < 1:
            parser.error(f'--report={args.report} must be at least 1')
        if args.report is None and args.out is None:
            parser.error('give --out FILE.gif (or --report N)')
        settings = {name: getattr(args, name) for name in suites if getattr(args, name) is not None}
        make = lambda seed: envs.make(args.task, seed=seed, size=(args.size, args.size),
                                      action_repeat=args.action_repeat, time_limit=args.time_limit,
                                      parallel=False, **settings)
        env = make(args.seed)
        if (args.policy == 'expert' or args.report is not None) and not hasattr(env, 'expert_action'):
            parser.error(f'{args.task} has no scripted expert (bbs, fetch and grid have one); use --policy random')
    except (_UsageError, ValueError) as error:
        print(f'show: error: {error}', file=sys.stderr)
        return 2
    if args.report is not None:
        env.close()
        print(json.dumps(report(make, args.report, args), ensure_ascii=False))
        return 0
    frames, total, obs = record(env, args.policy, args.seed, args.steps, args.height)
    env.close()
    if args.out.lower().endswith('.png'):
        chosen = np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int)
        gap = np.full((4, frames[0].shape[1], 3), 255, np.uint8)
        strip = np.concatenate([part for index in chosen for part in (frames[index], gap)][:-1], 0)
        Image.fromarray(strip).save(args.out)
    else:
        pathlib.Path(args.out).write_bytes(video.encode_gif(frames, args.fps))
    print(f'{args.out}: {len(frames)} frames, return {total:.3f}'
          + (f", scored {int(obs['log_scored'])}" if 'log_scored' in obs else ''))
    return 0


def policy_fn(env, policy, seed):
    """A function of the obs giving the next action."""
    if policy == 'expert':
        return lambda obs: env.expert_action()
    rng = np.random.default_rng(seed)
    space = env.act_space['action']
    if hasattr(space, 'n'):  # One-hot discrete actions.
        return lambda obs: np.eye(space.n, dtype=np.float32)[rng.integers(space.n)]
    return lambda obs: rng.uniform(space.low, space.high).astype(space.dtype)


def record(env, policy, seed, steps, height):
    """Frames of one episode of at most `steps` agent steps, its return and its last obs."""
    act = policy_fn(env, policy, seed)
    obs = env.reset()
    frames, total = [_frame(env, obs, height)], 0.0
    for _ in range(steps):
        obs = env.step(act(obs))
        total += float(obs['reward'])
        frames.append(_frame(env, obs, height))
        if obs['is_last']:
            break
    return frames, total, obs


def _frame(env, obs, height):
    image = obs[video.frames_key(env.obs_space)]  # show makes its envs with pixels
    view = np.asarray(Image.fromarray(image).resize(
        (max(1, round(image.shape[1] * height / image.shape[0])), height), Image.Resampling.NEAREST))
    if not hasattr(env, 'render_arena'):
        return view
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([env.render_arena(height), gap, view], 1)


def report(make, episodes, args):
    result = {'task': args.task, 'episodes': episodes, 'action_repeat': args.action_repeat,
              'time_limit': args.time_limit}
    for policy in ('expert', 'random'):
        returns, successes = [], []
        for seed in range(episodes):
            env = make(seed)
            act = policy_fn(env, policy, seed)
            obs, total = env.reset(), 0.0
            while not obs['is_last']:
                obs = env.step(act(obs))
                total += float(obs['reward'])
            env.close()
            returns.append(total)
            successes.append(bool(obs.get('success', False)))
        mean, std = float(np.mean(returns)), float(np.std(returns))
        result[policy] = {'return': f'{mean:.3f} ± {std:.3f}', 'return_mean': round(mean, 4),
                          'return_std': round(std, 4), 'success_rate': float(np.mean(successes))}
    return result


if __name__ == '__main__':
    sys.exit(main())
