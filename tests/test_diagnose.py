"""vsg.diagnose: which steps it compares, against a hand computation on a model whose reward is known."""
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from common import config as config_lib
from vsg import diagnose

B, T, A = 4, 7, 2


def make_agent(core, discrete=False):
    from vsg.agent import Agent
    config = config_lib.load(['--configs', 'debug', '--core', core, '--jit', 'false',
                              '--svsg.stoch', '6', '--svsg.hidden', '5'])
    action = gymnasium.spaces.Discrete(A) if discrete else gymnasium.spaces.Box(-1, 1, (A,), np.float32)
    return Agent({'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)}, {'action': action}, config)


def batch(seed=0):
    r = np.random.default_rng(seed)
    return {
        'image': r.integers(0, 256, (B, T, 64, 64, 3)).astype(np.uint8),
        'action': r.uniform(-1, 1, (B, T, A)).astype(np.float32),
        'reward': r.normal(size=(B, T)).astype(np.float32),
        'is_first': np.broadcast_to(np.arange(T) == 0, (B, T)).copy(),
        'is_terminal': np.zeros((B, T), bool)}


def constant_reward(agent, value):
    """Zero weights and bias `value` in the reward head's output layer: every prediction is `value`."""
    out = agent.wm.reward_head._out
    out.kernel.assign(tf.zeros_like(out.kernel))
    out.bias.assign(tf.fill(out.bias.shape, value))


@pytest.mark.parametrize('core', ['rssm', 'svsg'])
def test_errors_compare_the_steps_after_the_context_with_the_replayed_reward(core):
    agent = make_agent(core)
    constant_reward(agent, 0.25)
    data, context = batch(), 3
    result = diagnose.diagnose(agent, data, context, T - context)
    future = data['reward'][:, context:].astype(np.float64)
    np.testing.assert_allclose(result['open_loop_reward_mse'], np.mean((0.25 - future) ** 2, 0), atol=1e-4)
    assert result['posterior_reward_mse'] == pytest.approx(np.mean((0.25 - future) ** 2), abs=1e-4)
    assert result['reward_var'] == pytest.approx(np.var(future), abs=1e-4)
    assert result['replay_reward'] == pytest.approx(np.mean(future), abs=1e-4)
    # A reward head that ignores the state cannot show an action effect, nor an actor's gain.
    assert result['imagined_reward'] == {'replayed_actions': 0.25, 'actor': 0.25}
    assert result['constant_action_reward'] == {
        '0': 0.25, '+1': 0.25, '-1': 0.25, '+1[0]': 0.25, '-1[0]': 0.25, '+1[1]': 0.25, '-1[1]': 0.25}


def test_constant_actions_move_all_dimensions_then_each_alone():
    actions = diagnose.constant_actions(3, discrete=False)
    np.testing.assert_array_equal(actions['-1'], [-1, -1, -1])
    np.testing.assert_array_equal(actions['+1[1]'], [0, 1, 0])
    np.testing.assert_array_equal(actions['-1[2]'], [0, 0, -1])
    assert set(diagnose.constant_actions(1, discrete=False)) == {'0', '+1', '-1'}  # one dimension: no repeats


def test_discrete_actions_are_tried_one_by_one():
    agent = make_agent('rssm', discrete=True)
    data = batch()
    data['action'] = np.eye(A, dtype=np.float32)[np.random.default_rng(1).integers(0, A, (B, T))]
    result = diagnose.diagnose(agent, data, 2, 3)
    assert len(result['open_loop_reward_mse']) == 3
    assert set(result['constant_action_reward']) == {f'action_{i}' for i in range(A)}


def test_episode_filter_tells_seeded_episodes_from_the_runs_own_by_name(tmp_path):
    source, replay = tmp_path / 'collected', tmp_path / 'replay'
    source.mkdir(), replay.mkdir()
    for name in ('a.npz', 'b.npz'):
        (source / name).touch()
    config = config_lib.load(['--configs', 'debug', '--prefill_from', str(source)])
    seeded, own = diagnose.episode_filter(config, 'seeded'), diagnose.episode_filter(config, 'own')
    assert [seeded(replay / n) for n in ('a.npz', 'b.npz', 'c.npz')] == [True, True, False]
    assert [own(replay / n) for n in ('a.npz', 'b.npz', 'c.npz')] == [False, False, True]
    assert diagnose.episode_filter(config, 'all') is None


def test_episode_filter_needs_a_seeded_run():
    config = config_lib.load(['--configs', 'debug'])
    with pytest.raises(SystemExit) as error:
        diagnose.episode_filter(config, 'own')
    assert 'needs a run seeded with prefill_from' in str(error.value)


def test_command_line_refuses_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(SystemExit) as error:
        diagnose.main(['--logdir', str(tmp_path)])
    assert 'config.yaml does not exist' in str(error.value)


def test_realised_returns_against_a_hand_computation():
    reward = np.array([[9.0, 1.0, 2.0, 3.0]])  # r_0 belongs to no decision from step 0 on
    cont = np.array([[1.0, 1.0, 0.0, 1.0]])    # entering step 2 ends the episode
    returns = diagnose.realised_returns(reward, cont, np.array([10.0]), 0.5)
    # R_3 = 10 (bootstrap); R_2 = 3 + 0.5 * 10 = 8; R_1 = 2 + 0.5 * 0 * 8 = 2; R_0 = 1 + 0.5 * 2 = 2.
    np.testing.assert_allclose(returns, [[2.0, 2.0, 8.0, 10.0]])


@pytest.mark.parametrize('core', ['rssm', 'svsg'])
def test_critic_check_compares_values_with_the_bootstrapped_replayed_returns(core):
    agent = make_agent(core)
    out = agent.ac.critic._out
    out.kernel.assign(tf.zeros_like(out.kernel))
    out.bias.assign(tf.fill(out.bias.shape, 2.0))  # the critic says 2 everywhere
    data = batch()
    data['reward'] = np.ones((B, T), np.float32)
    result = diagnose.critic_check(agent, data, 0.5)
    # Every return bootstraps on 2 at the last step: R = 1 + 0.5 R_next with R_{T-1} = 2 is 2 everywhere.
    assert result['value'] == pytest.approx(2.0) and result['realised_return'] == pytest.approx(2.0)
    assert result['abs_error'] == pytest.approx(0.0, abs=1e-6)


def test_latent_noise_is_zero_for_an_actor_that_ignores_its_input_and_not_otherwise():
    agent = make_agent('rssm')
    noisy = diagnose.diagnose(agent, batch(), 3, T - 3)['latent_noise']
    assert noisy['within_state_std'] > 0 and noisy['across_state_std'] > 0  # discrete latents resampled
    out = agent.ac.actor._out
    out.kernel.assign(tf.zeros_like(out.kernel))
    assert diagnose.diagnose(agent, batch(), 3, T - 3)['latent_noise'] == {'within_state_std': 0.0, 'across_state_std': 0.0}


def test_open_loop_obs_error_per_vector_key_against_a_hand_computation():
    from vsg.agent import Agent
    config = config_lib.load(['--configs', 'debug', '--jit', 'false'])
    obs_space = {'position': gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)}
    agent = Agent(obs_space, {'action': gymnasium.spaces.Box(-1, 1, (A,), np.float32)}, config)
    out = agent.wm.decoder._out
    out.kernel.assign(tf.zeros_like(out.kernel))
    out.bias.assign(tf.fill(out.bias.shape, 0.5))  # every prediction is 0.5
    data = batch()
    del data['image']
    data['position'] = np.random.default_rng(2).normal(size=(B, T, 3)).astype(np.float32)
    result = diagnose.diagnose(agent, data, 3, T - 3)
    by_hand = np.mean((0.5 - data['position'][:, 3:]) ** 2, (0, 2))
    np.testing.assert_allclose(result['open_loop_obs_mse']['position'], by_hand, atol=1e-4)
