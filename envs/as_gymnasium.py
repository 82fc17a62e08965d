"""The project's envs as gymnasium envs: `gymnasium.make('vsg/Env-v0', task='dmc_cartpole_balance')`.

It is the env the agent trains on (envs.make's time limit, action repeat and [-1, 1] actions)
behind gymnasium's API. The observation is the image alone, a Box, since the reward and the
episode flags already travel in the 5-tuple; a suite's extra keys (such as `success`) go to
`info`. Discrete actions are ints of a Discrete space, as gymnasium users expect, rather than the
agent's one-hot vectors. Other keyword arguments of gymnasium.make go to envs.make (size,
action_repeat, time_limit, suite settings). The env runs in this process unless parallel=True,
which a process that has imported TensorFlow needs for MuJoCo suites.
"""

import functools

import gymnasium
import numpy as np

import envs
from envs import spaces

# Obs keys that the 5-tuple carries; the others go to `info`.
TUPLE_KEYS = ('image', *spaces.obs_space())


class GymnasiumEnv(gymnasium.Env):
    # Suites have no common real-time rate; this is the rate of the project's episode GIFs.
    metadata = {'render_modes': ['rgb_array'], 'render_fps': 20}

    def __init__(self, task, render_mode=None, seed=0, parallel=False, **make_kwargs):
        """seed: the env's seed until reset(seed=...) rebuilds it as envs.make(task, seed=...)."""
        if render_mode not in (None, *self.metadata['render_modes']):
            raise ValueError(f'render_mode={render_mode!r} is not supported; use rgb_array or None.')
        self.render_mode = render_mode
        self._make = functools.partial(envs.make, task, parallel=parallel, **make_kwargs)
        self._env = self._make(seed=seed)
        self._image = None
        self.observation_space = self._env.obs_space['image']
        space = self._env.act_space['action']
        self._one_hot = hasattr(space, 'n')
        self.action_space = gymnasium.spaces.Discrete(space.n) if self._one_hot else space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.close()
            self._env = self._make(seed=seed)
        return self._split(self._env.reset())

    def step(self, action):
        if self._one_hot:
            if action not in self.action_space:
                raise ValueError(f'Action {action!r} is not in {self.action_space}.')
            action = np.eye(self.action_space.n, dtype=np.float32)[action]
        obs = self._env.step(action)
        image, info = self._split(obs)
        terminated = obs['is_terminal']
        return image, float(obs['reward']), terminated, obs['is_last'] and not terminated, info

    def render(self):
        return None if self.render_mode is None else self._image.copy()

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None

    def _split(self, obs):
        """(image, info holding the suite's extra keys)."""
        self._image = obs['image']
        return obs['image'], {key: value for key, value in obs.items() if key not in TUPLE_KEYS}
