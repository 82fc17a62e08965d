"""The shared env wrappers (envs/wrappers.py) on a scripted suite env, in process: nothing renders."""
import gymnasium
import numpy as np
import pytest

from envs import spaces, wrappers
from envs.wrappers import denormalize_action


class ScriptedSuite:
    """Episodes of `length` frames whose reward is the frame number; the last is terminal. Records
    the actions it receives; renders a 4x6 frame showing the frame number."""

    def __init__(self, act_space, length=5):
        self.obs_space = spaces.obs_space()
        self.act_space = {'action': act_space}
        self.length, self.frame, self.received, self.renders = length, 0, [], 0

    def reset(self):
        self.frame = 0
        return spaces.obs(is_first=True)

    def step(self, action):
        self.frame += 1
        self.received.append(action)
        end = self.frame == self.length
        return spaces.obs(self.frame, is_last=end, is_terminal=end)

    def render(self, size):
        self.renders += 1
        return np.full((4, 6, 3), self.frame, np.uint8)

    def close(self):
        pass


BOX = gymnasium.spaces.Box(np.array([-2.0, 0.0]), np.array([2.0, 10.0]), (2,), np.float64)


def make(act_space=BOX, length=5, size=(8, 12), action_repeat=2, time_limit=100):
    suite = ScriptedSuite(act_space, length)
    return suite, wrappers.wrap(suite, size, action_repeat, time_limit)


def test_action_repeat_sums_rewards_and_stops_at_the_end_of_an_episode():
    suite, env = make(length=5)
    env.reset()
    steps = [env.step(np.zeros(2, np.float32)) for _ in range(3)]
    assert [float(obs['reward']) for obs in steps] == [1 + 2, 3 + 4, 5]
    assert [obs['is_last'] for obs in steps] == [False, False, True]
    assert steps[-1]['is_terminal'] and steps[-1]['reward'].dtype == np.float32
    assert suite.frame == 5
    # Rendered once per agent step (and at reset), never per repeated frame.
    assert suite.renders == 4


def test_time_limit_counts_frames_ends_without_terminal_and_refuses_steps_after_the_end():
    suite, env = make(length=100, action_repeat=3, time_limit=7)
    action = np.zeros(2, np.float32)
    with pytest.raises(RuntimeError, match='reset'):
        env.step(action)
    env.reset()
    steps = [env.step(action) for _ in range(3)]
    assert suite.frame == 7 and [obs['is_last'] for obs in steps] == [False, False, True]
    assert not steps[-1]['is_terminal']
    with pytest.raises(RuntimeError, match='reset'):
        env.step(action)
    assert env.reset()['is_first']


def test_box_actions_are_normalised_and_checked():
    suite, env = make(action_repeat=1)
    space = env.act_space['action']
    assert space == gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    env.reset()
    env.step(np.array([1, -1], np.float32))
    env.step(np.array([0, 0.5], np.float32))
    np.testing.assert_allclose(suite.received, [[2, 0], [0, 7.5]])
    assert suite.received[0].dtype == np.float64
    with pytest.raises(ValueError, match='shape'):
        env.step(np.zeros(3, np.float32))


def test_denormalize_action_maps_unit_box_onto_bounds_and_clips():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 10.0])
    np.testing.assert_allclose(denormalize_action(np.array([-1, -1]), low, high), low)
    np.testing.assert_allclose(denormalize_action(np.array([1, 1]), low, high), high)
    np.testing.assert_allclose(denormalize_action(np.array([0, 0.5]), low, high), [0, 7.5])
    np.testing.assert_allclose(denormalize_action(np.array([-3, 3]), low, high), [-2, 10])


def test_unbounded_box_actions_are_refused():
    with pytest.raises(ValueError, match='finite'):
        make(gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32))


def test_discrete_actions_are_one_hot_vectors():
    suite, env = make(gymnasium.spaces.Discrete(3, start=1), action_repeat=1)
    space = env.act_space['action']
    assert isinstance(space, spaces.OneHot) and space.n == 3 and space.shape == (3,)
    assert space.dtype == np.float32 and space.sample() in space
    assert np.array([1, 1, 0], np.float32) not in space
    env.reset()
    env.step(np.array([0, 0, 1], np.float32))
    env.step(np.array([1 - 1e-7, 1e-8, 0], np.float32))  # A straight-through sample's rounding.
    assert suite.received == [3, 1]
    with pytest.raises(ValueError, match='one-hot'):
        env.step(np.array([0.5, 0.5, 0], np.float32))
    with pytest.raises(ValueError, match='shape'):
        env.step(np.int64(1))


def test_image_is_rendered_and_resized_to_size():
    _, env = make(size=(2, 3))
    assert env.obs_space['image'] == gymnasium.spaces.Box(0, 255, (2, 3, 3), np.uint8)
    first = env.reset()
    assert first['image'].shape == (2, 3, 3) and first['image'].dtype == np.uint8
    assert np.all(env.step(np.zeros(2, np.float32))['image'] == 2)
    assert env.obs_space.keys() == first.keys()


def test_other_action_spaces_are_refused():
    with pytest.raises(ValueError, match='not supported'):
        make(gymnasium.spaces.MultiDiscrete([2, 2]))
