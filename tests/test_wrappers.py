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


class StateSuite(ScriptedSuite):
    """A ScriptedSuite that offers its frame number as state and cannot render."""

    def __init__(self, length=5):
        super().__init__(BOX, length)
        self.state_space = {'frame': spaces.vector_space(1), 'twice': spaces.vector_space(2)}
        self.reads = 0

    def state(self):
        self.reads += 1
        return spaces.state_vectors({'frame': self.frame, 'twice': [2 * self.frame, -2 * self.frame]})

    def render(self, size):
        raise RuntimeError('this suite cannot render')


def test_state_mode_adds_the_state_vectors_once_per_agent_step_and_never_renders():
    suite = StateSuite()
    env = wrappers.wrap(suite, (8, 12), 2, 100, obs='state')
    assert env.obs_space.keys() == {'frame', 'twice', *spaces.obs_space()}
    assert env.obs_space['twice'] == gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    episode = [env.reset()] + [env.step(np.zeros(2, np.float32)) for _ in range(2)]
    for obs in episode:
        assert obs.keys() == env.obs_space.keys()
        for key in suite.state_space:
            assert obs[key].dtype == np.float32 and obs[key] in env.obs_space[key], key
    assert [obs['twice'].tolist() for obs in episode] == [[0, 0], [4, -4], [8, -8]]  # Read after the repeat.
    assert suite.reads == 3 and suite.renders == 0


def test_both_mode_adds_the_image_and_the_state():
    suite = ScriptedSuite(BOX)
    suite.state_space = {'frame': spaces.vector_space(1)}
    suite.state = lambda: {'frame': np.array([suite.frame], np.float32)}
    env = wrappers.wrap(suite, (2, 3), 1, 100, obs='both')
    assert env.obs_space.keys() == {'image', 'frame', *spaces.obs_space()}
    env.reset()
    obs = env.step(np.zeros(2, np.float32))
    assert obs['image'].shape == (2, 3, 3) and np.all(obs['image'] == 1) and obs['frame'].tolist() == [1]


def test_pixels_mode_never_reads_the_state_and_needs_no_state_space():
    suite = ScriptedSuite(BOX)  # No state_space, no state(): pixels alone must not ask for them.
    env = wrappers.wrap(suite, (2, 3), 1, 100, obs='pixels')
    assert env.obs_space.keys() == {'image', *spaces.obs_space()}
    assert env.reset().keys() == env.obs_space.keys()


@pytest.mark.parametrize('obs', ['bad', 'image', None, 'State'])
def test_unknown_obs_mode_is_a_one_line_error_naming_the_modes(obs):
    with pytest.raises(ValueError, match=r'choose one of pixels, state, both') as error:
        wrappers.wrap(StateSuite(), (2, 3), 1, 100, obs=obs)
    assert '\n' not in str(error.value) and repr(obs) in str(error.value)


def test_state_keys_that_collide_with_obs_keys_are_refused():
    suite = StateSuite()
    suite.state_space = {'reward': spaces.vector_space(1), 'image': spaces.vector_space(1)}
    with pytest.raises(ValueError, match='state keys image, reward collide') as error:
        wrappers.wrap(suite, (2, 3), 1, 100, obs='state')
    assert '\n' not in str(error.value)
