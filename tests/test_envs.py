"""Tests of envs/: spaces, seeding, time limit, action mapping, suites and their settings, the
gymnasium registration, worker processes, render guard, the grid's and gym's state vectors (the
wrappers alone: test_wrappers.py; state mode across suites: test_state_obs.py).

Other test modules import TensorFlow into this pytest process, so every env here renders in a
spawned worker (the default), as in training, except the gridworld, which draws with numpy;
in-process rendering is tested in fresh processes.
"""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import envs
from envs import grid, spaces

SMALL = dict(size=(32, 32), time_limit=20)
REPO = pathlib.Path(__file__).resolve().parents[1]


def actions(count, dims, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, dims)).astype(np.float32)


def rollout(env, steps, seed=0):
    """Reset, then step random actions; returns the list of obs."""
    obs = [env.reset()]
    obs += [env.step(action) for action in actions(steps, env.act_space['action'].shape[0], seed)]
    return obs


def run_script(tmp_path, main_code, tensorflow=True):
    """Run main_code as the __main__ of a fresh process, by default one that has 'imported
    TensorFlow' (a stand-in module, as real TensorFlow is slow to import); returns its stdout."""
    script = tmp_path / 'trainer.py'
    stand_in = "sys.modules['tensorflow'] = types.ModuleType('tensorflow')" if tensorflow else ''
    script.write_text(textwrap.dedent(f"""
        import sys, types
        {stand_in}
        import envs
        if __name__ == '__main__':
    """) + textwrap.indent(textwrap.dedent(main_code), '    '))
    path = os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': path}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def assert_same_obs(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_spaces_and_obs():
    env = envs.make('dmc_cartpole_balance', **SMALL)
    assert set(env.obs_space) == {'image', 'reward', 'is_first', 'is_last', 'is_terminal'}
    assert env.obs_space['image'].shape == (32, 32, 3)
    space = env.act_space['action']
    assert space.dtype == np.float32 and space.shape == (1,)
    assert np.all(space.low == -1) and np.all(space.high == 1)
    first, second = env.reset(), env.step(np.zeros(1, np.float32))
    assert first['image'].dtype == np.uint8 and first['image'].shape == (32, 32, 3)
    assert first['reward'].dtype == np.float32 and first['reward'] == 0
    assert (first['is_first'], first['is_last'], first['is_terminal']) == (True, False, False)
    assert not second['is_first']
    for obs in (first, second):
        assert obs.keys() == env.obs_space.keys()
        for key, value in obs.items():
            assert np.asarray(value).dtype == env.obs_space[key].dtype, key
            assert np.asarray(value).shape == env.obs_space[key].shape, key
    env.close()


def test_same_seed_same_episode_other_seed_differs():
    make = lambda seed: envs.make('dmc_walker_walk', seed=seed, **SMALL)
    first, second, other = make(0), make(0), make(1)
    episode = rollout(first, 3)
    assert_same_obs(episode, rollout(second, 3))
    assert not np.array_equal(episode[0]['image'], rollout(other, 3)[0]['image'])
    # The task's RNG advances, so the next episode of the same env starts elsewhere.
    assert not np.array_equal(episode[0]['image'], first.reset()['image'])


def test_time_limit_counts_env_steps_and_blocks_stepping_after_the_end():
    env = envs.make('dmc_cartpole_balance', action_repeat=2, **SMALL)
    action = np.zeros(1, np.float32)
    with pytest.raises(RuntimeError, match='reset'):
        env.step(action)
    env.reset()
    episode = [env.step(action) for _ in range(10)]
    assert [obs['is_last'] for obs in episode] == [False] * 9 + [True]
    assert not any(obs['is_terminal'] for obs in episode)
    with pytest.raises(RuntimeError, match='reset'):
        env.step(action)
    assert env.reset()['is_first']


def test_action_repeat_sums_rewards_of_substeps():
    repeated = envs.make('dmc_walker_walk', action_repeat=2, **SMALL)
    single = envs.make('dmc_walker_walk', action_repeat=1, **SMALL)
    repeated.reset(), single.reset()
    for action in actions(3, 6):
        obs = repeated.step(action)
        substeps = [single.step(action) for _ in range(2)]
        assert obs['reward'] == pytest.approx(sum(sub['reward'] for sub in substeps), rel=1e-6)
        np.testing.assert_array_equal(obs['image'], substeps[-1]['image'])


@pytest.mark.parametrize('kwargs', [
    dict(size=(64,)), dict(size=(0, 64)), dict(size=(64.0, 64)), dict(action_repeat=0),
    dict(time_limit=0)])
def test_bad_kwargs_raise_one_line_value_error(kwargs):
    with pytest.raises(ValueError) as error:
        envs.make('dmc_walker_walk', **kwargs)
    assert '\n' not in str(error.value)


def test_bad_names_raise_at_make_time():
    with pytest.raises(ValueError, match="Unknown env 'atari_pong'.*dmc"):
        envs.make('atari_pong')
    with pytest.raises(ValueError, match="'dmc_walker_wlak'.*dmc_walker_walk") as error:
        envs.make('dmc_walker_wlak')
    assert '\n' not in str(error.value)


def test_unknown_suite_setting_is_a_one_line_error_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="'camra' for suite dmc; allowed: camera") as error:
        envs.make('dmc_walker_walk', camra=2)
    assert '\n' not in str(error.value)
    with pytest.raises(ValueError, match="'side' for suite gym; allowed: none"):
        envs.make('gym_CartPole-v1', side=3)


GRID = dict(parallel=False, action_repeat=1, size=(16, 16), side=4)


def grid_cells(image, side=4):
    """(agent, target) cells read from a gridworld image; the agent hides a target it stands on."""
    colours = image[::image.shape[0] // side, ::image.shape[1] // side]
    agent, target = (np.argwhere(np.all(colours == colour, -1)) for colour in (grid.AGENT, grid.TARGET))
    return tuple(agent[0]), tuple(target[0]) if len(target) else None


def toward(agent, target):
    """The action that moves the agent one cell closer to the target, rows first."""
    if agent[0] != target[0]:
        return 1 if target[0] < agent[0] else 2
    return 3 if target[1] < agent[1] else 4


def walk_to_target(env, obs):
    """Steps straight to the target; returns the obs of those steps."""
    steps = []
    agent, target = grid_cells(obs['image'])
    while agent != target:
        obs = env.step(np.eye(5, dtype=np.float32)[toward(agent, target)])
        steps.append(obs)
        agent = grid_cells(obs['image'])[0]
    return steps


def test_grid_reach_ends_with_a_terminal_reward_on_the_target():
    env = envs.make('grid_reach', **GRID)
    assert isinstance(env.act_space['action'], spaces.OneHot) and env.act_space['action'].n == 5
    first = env.reset()
    assert first['image'].shape == (16, 16, 3) and first['image'].dtype == np.uint8
    steps = walk_to_target(env, first)
    assert 1 <= len(steps) <= 6
    assert [float(obs['reward']) for obs in steps] == [0] * (len(steps) - 1) + [1]
    assert [obs['is_last'] for obs in steps] == [False] * (len(steps) - 1) + [True]
    assert steps[-1]['is_terminal']
    assert_same_obs([first], [envs.make('grid_reach', **GRID).reset()])
    images = {envs.make('grid_reach', seed=seed, **GRID).reset()['image'].tobytes() for seed in range(4)}
    assert len(images) > 1


def test_grid_expert_takes_the_shortest_path_to_each_target():
    """The expert's move is the one read off the image (rows first), through the one-hot wrapper,
    so an episode of it collects a target every Manhattan distance's steps."""
    env = envs.make('grid_collect', time_limit=60, **GRID)
    obs, rewards = env.reset(), 0.0
    for _ in range(60):
        agent, target = grid_cells(obs['image'])
        action = env.expert_action()
        assert action.dtype == np.float32 and action.tolist() == np.eye(5)[toward(agent, target)].tolist()
        obs = env.step(action)
        rewards += float(obs['reward'])
    assert obs['is_last'] and rewards >= 60 / 6  # at most 6 moves apart on a 4x4 grid


def test_grid_collect_moves_the_target_and_ends_only_at_the_time_limit():
    env = envs.make('grid_collect', time_limit=20, **GRID)
    obs = env.reset()
    steps = walk_to_target(env, obs)
    assert float(steps[-1]['reward']) == 1 and not steps[-1]['is_last']
    agent, target = grid_cells(steps[-1]['image'])
    assert agent != target
    stay = np.eye(5, dtype=np.float32)[0]
    steps += [env.step(stay) for _ in range(20 - len(steps))]
    assert steps[-1]['is_last'] and not any(obs['is_terminal'] for obs in steps)


def test_gym_suite_renders_frames_and_maps_terminated_and_truncated():
    env = envs.make('gym_CartPole-v1', action_repeat=1, size=(32, 32))
    assert isinstance(env.act_space['action'], spaces.OneHot) and env.act_space['action'].n == 2
    first = env.reset()
    assert first['image'].shape == (32, 32, 3) and first['image'].min() < first['image'].max()
    push = np.eye(2, dtype=np.float32)[0]
    steps = [env.step(push)]
    while not steps[-1]['is_last']:  # Pushing one way topples the pole: terminated.
        steps.append(env.step(push))
    assert len(steps) < 50 and steps[-1]['is_terminal']
    assert all(float(obs['reward']) == 1 for obs in steps)
    env.close()
    limited = envs.make('gym_CartPole-v1', action_repeat=2, time_limit=4, size=(32, 32))
    limited.reset()
    alternate = [np.eye(2, dtype=np.float32)[i % 2] for i in range(2)]
    steps = [limited.step(action) for action in alternate]
    assert [obs['is_last'] for obs in steps] == [False, True] and not steps[-1]['is_terminal']
    assert float(steps[0]['reward']) == 2
    limited.close()
    with pytest.raises(ValueError, match="gym_NoSuchEnv-v0") as error:
        envs.make('gym_NoSuchEnv-v0')
    assert '\n' not in str(error.value)


def test_every_suite_passes_gymnasium_check_env_and_lists_its_settings(tmp_path):
    # Renders DMC in process, so it runs in a fresh process without TensorFlow.
    stdout = run_script(tmp_path, """
        import importlib, inspect, warnings
        import gymnasium
        import numpy as np
        from gymnasium.utils.env_checker import check_env
        for suite, (path, settings) in envs.SUITES.items():
            module, name = path.split(':')
            parameters = list(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
            print(suite, parameters == ['task', 'seed', *settings])
        for task in ('dmc_cartpole_balance', 'grid_reach', 'grid_collect', 'gym_CartPole-v1'):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                env = gymnasium.make('vsg/Env-v0', task=task, render_mode='rgb_array', time_limit=50)
                check_env(env.unwrapped)
                image, _ = env.reset(seed=3)
                same = envs.make(task, seed=3, time_limit=50, parallel=False).reset()['image']
                print(task, env.observation_space, env.action_space, np.array_equal(image, same),
                      np.array_equal(env.render(), image), [str(w.message) for w in caught])
                env.close()
    """, tensorflow=False)
    assert stdout.splitlines() == [
        'dmc True', 'grid True', 'gym True', 'bbs True', 'dcs True', 'fetch True',
        'dmc_cartpole_balance Box(0, 255, (64, 64, 3), uint8) Box(-1.0, 1.0, (1,), float32) True True []',
        'grid_reach Box(0, 255, (64, 64, 3), uint8) Discrete(5) True True []',
        'grid_collect Box(0, 255, (64, 64, 3), uint8) Discrete(5) True True []',
        'gym_CartPole-v1 Box(0, 255, (64, 64, 3), uint8) Discrete(2) True True []']


def test_in_process_env_renders_without_tensorflow_and_refuses_once_it_is_imported(tmp_path):
    stdout = run_script(tmp_path, """
        env = envs.make('dmc_cartpole_balance', parallel=False, size=(32, 32))
        print(env.reset()['image'].shape)
        try:
            envs.make('dmc_walker_wlak', parallel=False)
        except ValueError as error:
            print('dmc_walker_walk' in str(error))
        sys.modules['tensorflow'] = types.ModuleType('tensorflow')
        try:
            env.reset()
        except RuntimeError as error:
            print('parallel=True' in str(error))
    """, tensorflow=False)
    assert stdout.splitlines() == ['(32, 32, 3)', 'True', 'True']


def test_dmc_frames_with_the_small_shadow_map_are_the_default_renders_up_to_shadow_edges(tmp_path):
    # The same state drawn by our env (shadow map rendering.DMC_SHADOW_SIZE) and by dm_control's own
    # physics at the model's 2048: all but a few edge pixels of the shadows agree.
    stdout = run_script(tmp_path, """
        import numpy as np
        from dm_control import suite
        from envs import rendering
        env = envs.make('dmc_walker_walk', parallel=False, seed=3)
        env.reset()
        for _ in range(20):
            env.step(np.full(6, 0.7, np.float32))
        physics = env._env.physics  # dm_control's, through the wrappers
        ours = env.render((64, 64)).astype(int)
        default = suite.load('walker', 'walk').physics
        default.set_state(physics.get_state())
        default.forward()
        theirs = default.render(64, 64, camera_id=0).astype(int)
        print(physics.model.vis.quality.shadowsize == rendering.DMC_SHADOW_SIZE < default.model.vis.quality.shadowsize)
        print(np.mean(np.abs(ours - theirs).max(-1) > 8) < 0.01, np.abs(ours - theirs).mean() < 0.5)
    """, tensorflow=False)
    assert stdout.splitlines() == ['True', 'True True']


def test_in_process_env_refused_next_to_tensorflow_before_dm_control_loads(tmp_path):
    # Importing dm_control next to TensorFlow already crashes, so the check must come first.
    stdout = run_script(tmp_path, """
        try:
            envs.make('dmc_cartpole_balance', parallel=False)
        except RuntimeError as error:
            print('parallel=True' in str(error), 'dm_control' in sys.modules)
    """)
    assert stdout == 'True False'


def test_worker_reraises_its_errors_and_closes_once():
    remote = envs.make('dmc_walker_walk', seed=3, **SMALL)
    rollout(remote, 2)
    with pytest.raises(ValueError, match='shape'):
        remote.step(np.zeros(2, np.float32))
    assert remote.step(np.zeros(6, np.float32))['image'].shape == (32, 32, 3)
    remote.close()
    remote.close()
    with pytest.raises(RuntimeError, match='closed'):
        remote.reset()


def test_async_stepping_of_two_workers():
    workers = [envs.make('dmc_walker_walk', seed=seed, **SMALL) for seed in (0, 1)]
    firsts = [promise() for promise in [env.reset(blocking=False) for env in workers]]
    assert not np.array_equal(firsts[0]['image'], firsts[1]['image'])
    for action in actions(3, 6):
        promises = [env.step(action, blocking=False) for env in workers]
        assert all(callable(promise) for promise in promises)
        for obs in [promise() for promise in promises]:
            assert obs['image'].shape == (32, 32, 3) and not obs['is_first']
    promise = workers[0].step(action, blocking=False)
    with pytest.raises(RuntimeError, match='previous result'):
        workers[0].step(action, blocking=False)
    assert promise()['reward'].dtype == np.float32
    with pytest.raises(RuntimeError, match='already collected'):
        promise()
    os.kill(workers[1]._process.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match='died'):
        workers[1].step(action)
    for env in workers:
        env.close()


def test_worker_does_not_rerun_the_trainers_main_module(tmp_path):
    # Spawn re-runs the parent's __main__ in the child, and the trainer's main imports TensorFlow.
    stdout = run_script(tmp_path, """
        env = envs.make('dmc_cartpole_balance', size=(32, 32))
        print(env.reset()['image'].shape)
        env.close()
    """)
    assert stdout == '(32, 32, 3)'


def test_grid_state_is_the_drawn_cells_scaled_to_the_unit_square():
    env = envs.make('grid_collect', obs='both', time_limit=30, **GRID)
    assert {key: env.obs_space[key].shape for key in ('agent', 'target')} == {'agent': (2,), 'target': (2,)}
    episode = [env.reset()]
    while not episode[-1]['is_last']:
        episode.append(env.step(env.expert_action()))
    assert len(episode) == 31 and sum(float(obs['reward']) for obs in episode) >= 5
    for obs in episode:
        agent, target = grid_cells(obs['image'])
        np.testing.assert_array_equal(obs['agent'] * 3, agent)  # side 4: cells 0..3 scale to 0..1.
        np.testing.assert_array_equal(obs['target'] * 3, target)
        assert obs['agent'].dtype == obs['target'].dtype == np.float32


def test_grid_distractors_move_on_their_own_are_seeded_and_leave_the_task_alone():
    def episode(distractors, seed=3):
        env = envs.make('grid_collect', seed=seed, obs='both', segmentation=True, time_limit=25,
                        **{**GRID, 'side': 6, 'distractors': distractors})
        obs = [env.reset()]
        while not obs[-1]['is_last']:
            obs.append(env.step(env.expert_action()))
        return obs
    plain, busy = episode(0), episode(3)
    assert 'distractors' not in plain[0] and busy[0]['distractors'].shape == (6,)
    # The distractors draw from their own generator: agent, target and rewards are those of the plain grid.
    for a, b in zip(plain, busy):
        for key in ('agent', 'target', 'reward'):
            np.testing.assert_array_equal(a[key], b[key])
    cells = np.array([obs['distractors'].reshape(3, 2) * 5 for obs in busy])  # side 6: cells 0..5
    steps = np.abs(np.diff(cells, axis=0)).sum(-1)
    assert np.all(steps <= 1) and steps.sum() > 10  # one cell or none per step, and they do move
    assert_same_obs(busy, episode(3))  # same seed, same episode
    for obs in busy:
        labels, image = obs['segmentation'], obs['image']
        assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 5} and 1 in labels
        for i, colour in enumerate(grid.DISTRACTOR_COLOURS[:3]):
            shown = labels == 3 + i
            assert np.all(image[shown] == colour)  # where a distractor is labelled, it is drawn
        assert np.all(image[labels == 1] == grid.AGENT)
    with pytest.raises(ValueError, match='distractors=17 must lie in 0..16'):
        envs.make('grid_collect', **{**GRID, 'distractors': 17})


def test_gym_state_is_the_envs_own_observation_flattened():
    import gymnasium
    env = envs.make('gym_CartPole-v1', seed=5, obs='state', action_repeat=1, parallel=False)
    plain = gymnasium.make('CartPole-v1')
    assert env.obs_space['vector'].shape == (4,) and 'image' not in env.obs_space
    np.testing.assert_array_equal(env.reset()['vector'], plain.reset(seed=5)[0])
    for index in (0, 1, 1, 0):
        np.testing.assert_array_equal(env.step(np.eye(2, dtype=np.float32)[index])['vector'], plain.step(index)[0])
    # A Discrete observation is a one-hot vector: FrozenLake's cell, 0 at the start.
    lake = envs.make('gym_FrozenLake-v1', obs='state', action_repeat=1, parallel=False)
    assert lake.obs_space['vector'].shape == (16,) and lake.reset()['vector'].tolist() == [1] + [0] * 15


def test_gym_state_of_a_nested_observation_space_is_refused_but_pixels_work():
    pixels = envs.make('gym_Blackjack-v1', obs='pixels', size=(16, 16), parallel=False)
    assert pixels.reset()['image'].shape == (16, 16, 3)
    for parallel in (False, True):
        with pytest.raises(ValueError, match=r'gym_Blackjack-v1 has the observation space Tuple\(Discrete\(32\), '
                                             r".*no state vector.*use obs='pixels'") as error:
            envs.make('gym_Blackjack-v1', obs='state', parallel=parallel)
        assert '\n' not in str(error.value)
