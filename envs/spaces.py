"""Spaces and action mapping shared by all suites (the obs dict of DESIGN.md section 3)."""

import gymnasium as gym
import numpy as np


def obs_space(size):
    flag = gym.spaces.Box(0, 1, (), bool)
    return {
        'image': gym.spaces.Box(0, 255, tuple(size) + (3,), np.uint8),
        'reward': gym.spaces.Box(-np.inf, np.inf, (), np.float32),
        'is_first': flag, 'is_last': flag, 'is_terminal': flag,
    }


def act_space(shape):
    """Continuous actions as the agent sees them: the unit box, mapped by denormalize_action."""
    return {'action': gym.spaces.Box(-1, 1, shape, np.float32)}


def denormalize_action(action, low, high):
    """Map the agent's [-1, 1] onto the env's [low, high] per dimension."""
    return low + (np.clip(action, -1, 1) + 1) / 2 * (high - low)
