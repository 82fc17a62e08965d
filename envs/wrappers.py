"""The wrappers every suite goes through in envs.make, so that a suite only loads and renders its task.

A suite env has `obs_space` and `act_space` (dicts of gymnasium spaces), `reset() -> obs` and
`step(action) -> obs` with the keys of spaces.obs_space() (no image, no state), `render(size) -> frame`
(uint8 [H, W, 3], of `size` where the suite can render at any size), `state_space` (a dict of rank-1
float32 Boxes) with `state() -> {key: vector}` for the current step, and `close()`; the suites that
have one also `render_segmentation(size) -> labels` (uint8 [H, W] of `size`, the frame's pixels'
object ids, 0 the background). `wrap` turns it into the env the agent sees (docs/design.md,
"Environments").
"""

import gymnasium as gym
import numpy as np
from PIL import Image

from envs import spaces


OBS_MODES = ('pixels', 'state', 'both')


def check_obs(obs):
    """A ValueError naming the allowed values unless `obs` is one of OBS_MODES."""
    if obs not in OBS_MODES:
        raise ValueError(f"obs={obs!r} is not allowed; choose one of {', '.join(OBS_MODES)}.")


def wrap(env, size, action_repeat, time_limit, obs='pixels', segmentation=False):
    """Innermost first: the time limit counts the suite's own steps (env frames) whatever the
    action repeat; actions are mapped once per agent step and the image and segmentation are
    rendered (or the state read) once per agent step (rendering costs more than a physics step)."""
    env = TimeLimit(env, time_limit)
    env = ActionRepeat(env, action_repeat)
    space = env.act_space['action']
    if isinstance(space, gym.spaces.Discrete):
        env = OneHotAction(env)
    elif isinstance(space, gym.spaces.Box):
        env = NormalizeAction(env)
    else:
        raise ValueError(f'Action space {space} is not supported; use a Box or a Discrete one.')
    return Observe(env, size, obs, segmentation)


class Wrapper:
    """Passes everything through; subclasses replace what they change."""

    def __init__(self, env):
        self.env = env
        self.obs_space = env.obs_space
        self.act_space = env.act_space

    def __getattr__(self, name):
        """Other attributes are the wrapped env's (such as a suite's `expert_action` or
        `render_arena`). Only called for names not found on the wrapper itself; dunder names and
        `env` (not yet set while __init__ runs or unpickling) are not forwarded."""
        if name == 'env' or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self):
        return self.env.reset()

    def step(self, action):
        return self.env.step(action)

    def render(self, size):
        return self.env.render(size)

    def close(self):
        self.env.close()


class TimeLimit(Wrapper):
    """Ends an episode (is_last, not is_terminal: the state is not terminal) after `frames` steps of
    the wrapped env, and refuses a step when no episode is running."""

    def __init__(self, env, frames):
        super().__init__(env)
        self._frames = frames
        self._count = None  # Steps of the running episode; None when there is none.

    def reset(self):
        self._count = 0
        return self.env.reset()

    def step(self, action):
        if self._count is None:
            raise RuntimeError('step() called with no episode running (never reset, or the last '
                               'obs had is_last=True); call reset() first.')
        obs = self.env.step(action)
        self._count += 1
        if self._count >= self._frames:
            obs = {**obs, 'is_last': True}
        if obs['is_last']:
            self._count = None
        return obs


class ActionRepeat(Wrapper):
    """Repeats each action `repeat` times, summing the rewards; stops early when the episode ends."""

    def __init__(self, env, repeat):
        super().__init__(env)
        self._repeat = repeat

    def step(self, action):
        reward = 0.0
        for _ in range(self._repeat):
            obs = self.env.step(action)
            reward += float(obs['reward'])
            if obs['is_last']:
                break
        return {**obs, 'reward': np.float32(reward)}


class NormalizeAction(Wrapper):
    """Takes Box actions in [-1, 1] (clipping beyond) and maps them onto the env's bounds."""

    def __init__(self, env):
        super().__init__(env)
        self._env_space = env.act_space['action']
        if not (np.all(np.isfinite(self._env_space.low)) and np.all(np.isfinite(self._env_space.high))):
            raise ValueError(f'Cannot normalise the action space {self._env_space}: its bounds must be finite.')
        self.act_space = {**env.act_space, 'action': spaces.unit_box(self._env_space.shape)}

    def step(self, action):
        action = _checked_shape(action, self.act_space['action'])
        low, high = self._env_space.low, self._env_space.high
        return self.env.step(denormalize_action(action, low, high).astype(self._env_space.dtype))


class OneHotAction(Wrapper):
    """Takes a Discrete space's actions as one-hot vectors (what the actor samples)."""

    def __init__(self, env):
        super().__init__(env)
        self._start = int(env.act_space['action'].start)
        self.act_space = {**env.act_space, 'action': spaces.OneHot(int(env.act_space['action'].n))}

    def step(self, action):
        action = _checked_shape(action, self.act_space['action'])
        index = int(np.argmax(action))
        # Straight-through samples differ from one-hot by float rounding only.
        if not np.allclose(action, np.eye(len(action))[index], atol=1e-6):
            raise ValueError(f'Action {action.tolist()} is not one-hot.')
        return self.env.step(self._start + index)


class Observe(Wrapper):
    """Adds what the agent observes, by `obs`: `pixels` the suite's frame as `image` at `size` (height,
    width), resized if the suite cannot render at that size; `state` the suite's state vectors under
    their own keys, and never renders; `both` both. `segmentation` adds the suite's label map of
    `size` as `segmentation` in any mode (so a state run with it renders); the agent never reads it.
    Outermost, so it runs once per agent step."""

    def __init__(self, env, size, obs='pixels', segmentation=False):
        super().__init__(env)
        check_obs(obs)
        if segmentation and not hasattr(env, 'render_segmentation'):
            raise ValueError('This env renders no segmentation (envs.SEGMENTATION lists the suites that do).')
        self._size = tuple(size)
        self._pixels, self._state = obs in ('pixels', 'both'), obs in ('state', 'both')
        self._segmentation = bool(segmentation)
        state_space = dict(env.state_space) if self._state else {}
        taken = sorted(set(state_space) & {'image', 'segmentation', 'action', *env.obs_space})
        if taken:
            raise ValueError(f"state keys {', '.join(taken)} collide with observation keys; rename them in the suite.")
        image_space = {'image': spaces.image_space(self._size)} if self._pixels else {}
        labels_space = {'segmentation': spaces.segmentation_space(self._size)} if self._segmentation else {}
        self.obs_space = {**image_space, **labels_space, **state_space, **env.obs_space}

    def reset(self):
        return self._observed(self.env.reset())

    def step(self, action):
        return self._observed(self.env.step(action))

    def _observed(self, obs):
        image = {'image': resize(self.env.render(self._size), self._size)} if self._pixels else {}
        labels = {'segmentation': self.env.render_segmentation(self._size)} if self._segmentation else {}
        state = self.env.state() if self._state else {}
        return {**image, **labels, **state, **obs}


def denormalize_action(action, low, high):
    """Map the agent's [-1, 1] onto [low, high] per dimension."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return low + (np.clip(action, -1, 1) + 1) / 2 * (high - low)


def resize(frame, size):
    """A uint8 RGB frame [H, W, 3] at `size` (height, width); bilinear, which pillow antialiases
    when shrinking."""
    if frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _checked_shape(action, space):
    action = np.asarray(action)
    if action.shape != space.shape:
        raise ValueError(f'Action shape {action.shape} does not match the action space {space}.')
    return action
