"""The project's envs as gymnasium envs: `gymnasium.make('vsg/Env-v0', task='dmc_cartpole_balance')`.

It is the env the agent trains on (envs.make's time limit, action repeat and [-1, 1] actions)
behind gymnasium's API. The observation follows `obs` (see envs.make): with pixels (the default) it
is the image alone, a Box; with state or both it is a gymnasium.spaces.Dict of the suite's state
vectors (unbounded Boxes, which check_env warns about), and of `image` too with both. With
segmentation=True (suites in envs.SEGMENTATION) the observation is always a Dict, holding
`segmentation` (a uint8 [H, W] Box of object ids) besides `image` and/or the state. The reward and
the episode flags travel in the 5-tuple; a suite's other keys (scalars such as `success`) go to
`info`. render_mode='rgb_array' returns the frame of the current step, so in state mode the env then
renders every step as with both. Discrete actions are ints of a Discrete space, as gymnasium users
expect, rather than the agent's one-hot vectors. Other keyword arguments of gymnasium.make go to
envs.make (size, action_repeat, time_limit, suite settings). The env runs in this process unless
parallel=True, which a process that has imported TensorFlow needs for MuJoCo suites.
"""

import functools

import gymnasium
import numpy as np

import envs
from envs import spaces


class GymnasiumEnv(gymnasium.Env):
    # Suites have no common real-time rate; this is the rate of the project's episode GIFs.
    metadata = {'render_modes': ['rgb_array'], 'render_fps': 20}

    def __init__(self, task, render_mode=None, seed=0, parallel=False, obs='pixels', **make_kwargs):
        """seed: the env's seed until reset(seed=...) rebuilds it as envs.make(task, seed=...)."""
        if render_mode not in (None, *self.metadata['render_modes']):
            raise ValueError(f'render_mode={render_mode!r} is not supported; use rgb_array or None.')
        self.render_mode = render_mode
        # render() hands out the image, so a rendering env in state mode observes both.
        made = 'both' if obs == 'state' and render_mode == 'rgb_array' else obs
        self._make = functools.partial(envs.make, task, parallel=parallel, obs=made, **make_kwargs)
        self._env = self._make(seed=seed)
        self._image = None
        obs_space = self._env.obs_space
        if obs == 'pixels' and 'segmentation' not in obs_space:
            self._keys = None  # The image alone, not in a dict.
            self.observation_space = obs_space['image']
        else:
            # The state vectors are the rank-1 entries: the suites' other keys are scalars.
            image = obs in ('pixels', 'both')
            self._keys = [key for key, space in obs_space.items() if key not in spaces.obs_space()
                          and (len(space.shape) == 1 or key == 'segmentation' or (key == 'image' and image))]
            self.observation_space = gymnasium.spaces.Dict({key: obs_space[key] for key in self._keys})
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
        observation, info = self._split(obs)
        terminated = obs['is_terminal']
        return observation, float(obs['reward']), terminated, obs['is_last'] and not terminated, info

    def render(self):
        return None if self.render_mode is None else self._image.copy()

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None

    def _split(self, obs):
        """(observation, info holding the suite's other keys)."""
        self._image = obs.get('image')
        observation = obs['image'] if self._keys is None else {key: obs[key] for key in self._keys}
        taken = {'image', *(self._keys or ()), *spaces.obs_space()}
        return observation, {key: value for key, value in obs.items() if key not in taken}
