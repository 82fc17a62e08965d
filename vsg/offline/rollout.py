"""Runs an offline agent in its env: envs in spawned workers (vsg.build.make_envs) stepped by the
driver, the agent seeing the same stacked representation it was trained on."""
import numpy as np

from common import driver as driver_lib
from vsg import build
from vsg.offline.loop import StageError


def stacking_policy(act, convert, frame_stack):
    """A driver policy: converts each obs batch with the representation, keeps the last `frame_stack`
    per env (a new episode fills them with its first), and returns act(stacked) as actions."""
    def policy(obs, frames):
        current = np.asarray(convert(obs))
        first = np.asarray(obs['is_first'], bool)
        if frames is None:
            frames = np.repeat(current[:, None], frame_stack, 1)
        else:
            frames = np.concatenate([frames[:, 1:], current[:, None]], 1)
            frames[first] = np.repeat(current[first][:, None], frame_stack, 1)
        stacked = np.concatenate([frames[:, i] for i in range(frame_stack)], -1)
        return np.asarray(act(stacked), np.float32), frames
    return policy


def returns(env_config, policy, episodes, workers, seed, actions):
    """Returns of the first `episodes` episodes finished by `policy` (a driver policy, or
    'random' for uniform actions) on min(workers, episodes) envs seeded seed, seed + 1, ...
    actions: (size, discrete) of the data's actions, which the env's must match."""
    envs = build.make_envs(env_config.update({'env.parallel': True}), min(workers, episodes), seed)
    try:
        space = envs[0].act_space['action']
        here = (space.n if hasattr(space, 'n') else int(np.prod(space.shape)), hasattr(space, 'n'))
        if here != tuple(actions):
            raise StageError(f'{env_config.task} takes {_kind(*here)} actions, the data holds {_kind(*actions)} ones')
        if policy == 'random':
            policy = driver_lib.random_policy(envs[0].act_space['action'], np.random.default_rng(seed))
        finished = []
        driver = driver_lib.Driver(envs)
        driver.on_episode(lambda episode, worker: finished.append(float(episode['reward'].sum())))
        driver(policy, episodes=episodes)
    finally:
        for env in envs:
            env.close()
    return finished[:episodes]


def _kind(size, discrete):
    return f'{size} one-hot' if discrete else f'{size}-dimensional'
