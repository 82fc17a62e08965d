"""The driver's bookkeeping with a scripted in-process env: action alignment, resets, counts."""
import gymnasium
import numpy as np
import pytest

from common.driver import Driver, random_policy, zero_policy
from envs.process import ProcessEnv


class CountingEnv:
    """Episodes of `length` steps; the image encodes (env id, step), the reward echoes the action."""

    def __init__(self, ident, length):
        self.ident, self.length, self.t = ident, length, 0
        self.obs_space = {'image': gymnasium.spaces.Box(0, 255, (1, 1, 3), np.uint8)}
        self.act_space = {'action': gymnasium.spaces.Box(-1, 1, (1,), np.float32)}

    def _obs(self, reward):
        return {'image': np.full((1, 1, 3), [self.ident, self.t, 0], np.uint8), 'reward': np.float32(reward),
                'is_first': self.t == 0, 'is_last': self.t == self.length, 'is_terminal': False}

    def reset(self):
        self.t = 0
        return self._obs(0.0)

    def step(self, action):
        self.t += 1
        return self._obs(action[0])


def test_transitions_carry_the_action_that_led_to_them_and_episodes_restart():
    envs = [CountingEnv(0, 3), CountingEnv(1, 3)]
    driver = Driver(envs)
    transitions, episodes = [[], []], []
    driver.on_step(lambda tran, worker: transitions[worker].append(tran))
    driver.on_episode(lambda episode, worker: episodes.append((worker, episode)))
    calls = []

    def policy(obs, state):
        calls.append(obs['image'][:, 0, 0, 1].tolist())
        state = 0 if state is None else state + 1
        return np.full((2, 1), 0.1 * (state + 1), np.float32), state

    steps, finished = driver(policy, episodes=2)
    assert finished == 2 and steps == 2 * 5      # per env: reset + 3 steps + the next reset
    assert calls == [[0, 0], [1, 1], [2, 2]]
    for worker in (0, 1):
        rewards = [float(t['reward']) for t in transitions[worker]]
        actions = [float(t['action'][0]) for t in transitions[worker]]
        np.testing.assert_allclose(actions, [0, 0.1, 0.2, 0.3, 0], rtol=1e-6)
        np.testing.assert_allclose(rewards, actions, rtol=1e-6)
        assert [bool(t['is_first']) for t in transitions[worker]] == [True, False, False, False, True]
    worker, episode = episodes[0]
    assert episode['image'].shape == (4, 1, 1, 3) and episode['action'].shape == (4, 1)
    np.testing.assert_allclose(episode['action'][:, 0], [0, 0.1, 0.2, 0.3], rtol=1e-6)
    # A second call continues from the fresh episodes and the policy state it left off with.
    driver(policy, steps=2)
    assert calls[-1] == [0, 0]
    np.testing.assert_allclose(float(transitions[0][-1]['action'][0]), 0.4, rtol=1e-6)


def test_random_policy_respects_bounds_and_one_hot():
    rng = np.random.default_rng(0)
    box = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
    actions, _ = random_policy(box, rng)({'is_first': np.zeros(5, bool)}, None)
    assert actions.shape == (5, 3) and actions.dtype == np.float32 and np.all(np.abs(actions) <= 1)
    onehot, _ = random_policy(gymnasium.spaces.Discrete(4), rng)({'is_first': np.zeros(5, bool)}, None)
    assert onehot.shape == (5, 4) and np.all(onehot.sum(-1) == 1)


def test_zero_policy_gives_the_centre_action_and_refuses_discrete_spaces():
    box = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    actions, state = zero_policy(box)({'is_first': np.zeros(3, bool)}, 'kept')
    assert actions.shape == (3, 2) and actions.dtype == np.float32 and not actions.any() and state == 'kept'
    with pytest.raises(ValueError, match='continuous'):
        zero_policy(gymnasium.spaces.Discrete(4))


def test_discrete_env_records_one_hot_zero_actions_and_stacks_episodes():
    env = CountingEnv(0, 2)
    env.act_space = {'action': gymnasium.spaces.Discrete(3)}
    episodes = []
    driver = Driver([env])
    driver.on_episode(lambda episode, worker: episodes.append(episode))
    driver(lambda obs, state: (np.eye(3, dtype=np.float32)[[1]], state), episodes=1)
    actions = episodes[0]['action']
    assert actions.dtype == np.float32
    np.testing.assert_array_equal(actions, [[0, 0, 0], [0, 1, 0], [0, 1, 0]])


class DeferredEnv:
    """A worker env stand-in, `nonblocking` as ProcessEnv: step(blocking=False) sends and returns the
    collecting callable, logging both."""

    nonblocking = True

    def __init__(self, log, length):
        self._inner, self._log = CountingEnv(0, length), log
        self.obs_space, self.act_space = self._inner.obs_space, self._inner.act_space

    def reset(self, blocking=True):
        return self._inner.reset() if blocking else (lambda: self._inner.reset())

    def step(self, action, blocking=True):
        self._log.append('sent')

        def collect():
            self._log.append('collected')
            return self._inner.step(action)
        return collect

    def close(self):
        pass


def test_wait_callbacks_run_between_sending_the_actions_and_collecting_the_observations():
    assert ProcessEnv.nonblocking  # what the driver looks for, as it must not import envs
    log = []
    driver = Driver([DeferredEnv(log, length=10)])
    driver.on_wait(lambda: log.append('wait'))
    driver.on_step(lambda tran, worker: log.append(f"step {tran['image'][0, 0, 1]}"))
    steps, _ = driver(lambda obs, state: (np.zeros((1, 1), np.float32), state), steps=4)
    assert steps == 4
    assert log == ['step 0'] + ['sent', 'wait', 'collected', 'step 1', 'sent', 'wait', 'collected', 'step 2',
                                'sent', 'wait', 'collected', 'step 3']
