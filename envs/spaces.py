"""Spaces and obs dicts shared by all suites and wrappers (docs/design.md, "Observations")."""

import gymnasium as gym
import numpy as np


def obs_space():
    """The keys every obs carries; the Observe wrapper adds `image`, `segmentation` and state keys, a
    suite may add extras."""
    flag = gym.spaces.Box(0, 1, (), bool)
    return {
        'reward': gym.spaces.Box(-np.inf, np.inf, (), np.float32),
        'is_first': flag, 'is_last': flag, 'is_terminal': flag,
    }


def obs(reward=0.0, is_first=False, is_last=False, is_terminal=False):
    """An obs dict of the keys in obs_space(), with their dtypes."""
    return {'reward': np.float32(reward), 'is_first': bool(is_first), 'is_last': bool(is_last),
            'is_terminal': bool(is_terminal)}


def image_space(size):
    return gym.spaces.Box(0, 255, tuple(size) + (3,), np.uint8)


def segmentation_space(size):
    """A label map: an object id per pixel of a frame of `size`, 0 the background."""
    return gym.spaces.Box(0, 255, tuple(size), np.uint8)


def vector_space(size):
    """A state vector of `size` entries (positions, velocities, ...), unbounded."""
    return gym.spaces.Box(-np.inf, np.inf, (int(size),), np.float32)


def state_vectors(values):
    """{key: float32 vector}: scalars become length-1 vectors and arrays are flattened, as
    vector_space declares them."""
    return {key: np.asarray(value, np.float32).reshape(-1) for key, value in values.items()}


def unit_box(shape):
    """Continuous actions as the agent sees them (NormalizeAction maps them onto the env's bounds)."""
    return gym.spaces.Box(-1, 1, shape, np.float32)


class OneHot(gym.spaces.Box):
    """Discrete actions as the agent sees them: one-hot float32 vectors of size `n`. The `n`
    attribute marks the space as discrete for the agent, as it does on gymnasium's Discrete."""

    def __init__(self, n, seed=None):
        super().__init__(0, 1, (n,), np.float32, seed)
        self.n = n

    def sample(self, mask=None, probability=None):
        return np.eye(self.n, dtype=np.float32)[self.np_random.integers(self.n)]

    def contains(self, x):
        return super().contains(x) and bool(np.count_nonzero(x) == 1 and np.max(x) == 1)

    def __repr__(self):
        return f'OneHot({self.n})'


def checked_action(action, shape, suite):
    """`action` as a float64 array of `shape`; a wrong shape or a non-finite value is a one-line ValueError."""
    action = np.asarray(action, np.float64)
    if action.shape != shape:
        raise ValueError(f'{suite} actions have shape {shape}, got shape {action.shape}.')
    if not np.all(np.isfinite(action)):
        raise ValueError(f'{suite} action {action.tolist()} is not finite.')
    return action
