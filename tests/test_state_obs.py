"""State observations of every suite (envs.make(..., obs='state')): the obs carries exactly the suite's
state vectors with their declared shapes, the same ones under the same seed and actions, and nothing
renders. Per-suite checks that the state tracks the physics live with each suite's tests.

The numpy, pymunk and gymnasium suites and Fetch (stepping MuJoCo is safe next to TensorFlow) run in
this process with their render() made to raise; DMC and DCS load dm_control, which this pytest
process may not, so they run in a fresh process.
"""

import inspect
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import bbs, fetch, grid, gym, spaces
from fresh_python import run_fresh

FLAGS = set(spaces.obs_space())
# check_env's only complaint about state spaces: state vectors are unbounded Boxes.
UNBOUNDED = ('A Box observation space minimum value is -infinity', 'A Box observation space maximum value is infinity')


def state_episodes(make, steps=10, seed=0):
    """Two envs from make() (state mode, same seed) stepped with the same random actions (a reset
    where an episode ends). Checks that each obs holds the state keys, as float32 vectors inside their
    declared spaces, besides the flags and the suite's scalars, and no image; returns the two
    sequences of state dicts as lists."""
    runs = []
    for _ in range(2):
        env, rng = make(), np.random.default_rng(seed)
        space, state_keys = env.obs_space, list(env.state_space)
        assert 'image' not in space and set(state_keys) <= set(space)
        assert all(space[key].dtype == np.float32 and len(space[key].shape) == 1 for key in state_keys)
        assert all(space[key].shape == () for key in space if key not in state_keys)  # Flags, success...
        action_space = env.act_space['action']
        obs, run = env.reset(), []
        for _ in range(steps + 1):
            assert obs.keys() == space.keys()
            for key in state_keys:
                value = obs[key]
                assert value.dtype == np.float32 and value.shape == space[key].shape, key
                assert space[key].contains(value) and np.all(np.isfinite(value)), key
            run.append({key: obs[key].tolist() for key in state_keys})
            if obs['is_last']:
                obs = env.reset()
            elif hasattr(action_space, 'n'):
                obs = env.step(np.eye(action_space.n, dtype=np.float32)[rng.integers(action_space.n)])
            else:
                obs = env.step(rng.uniform(-1, 1, action_space.shape).astype(np.float32))
        env.close()
        runs.append(run)
    return runs


def cannot_render(self, size):
    raise AssertionError('state mode rendered')


IN_PROCESS = [
    ('grid_collect', grid.Grid, dict(side=5, action_repeat=1)),
    ('gym_CartPole-v1', gym.Gym, dict(action_repeat=1)),
    ('gym_FrozenLake-v1', gym.Gym, dict(action_repeat=1)),
    ('bbs_dense', bbs.BBS, dict(max_objects=3, max_distractors=2, variable_num_objects=True,
                                variable_num_distractors=True)),
    ('fetch_ReachRed_0to4Distractors_Dense', fetch.Fetch, {}),
    ('fetch_PushRed_2Distractors_Sparse', fetch.Fetch, {}),
    ('fetch_PickOdd_2to3Distractors_Dense', fetch.Fetch, {}),
]


@pytest.mark.parametrize('name, suite, settings', IN_PROCESS, ids=[name for name, *_ in IN_PROCESS])
def test_state_mode_obs_are_the_declared_vectors_deterministic_and_never_rendered(name, suite, settings, monkeypatch):
    monkeypatch.setattr(suite, 'render', cannot_render)
    make = lambda: envs.make(name, seed=3, obs='state', parallel=False, time_limit=200, **settings)
    first, second = state_episodes(make)
    assert first == second
    assert any(a != b for a, b in zip(first, first[1:]))  # The state changes.
    other = lambda: envs.make(name, seed=4, obs='state', parallel=False, time_limit=200, **settings)
    if not name.startswith('gym_FrozenLake'):  # FrozenLake always starts in the same cell.
        assert state_episodes(other, steps=0)[0][0] != first[0]


@pytest.mark.parametrize('obs', ['bad', 'State', None])
def test_make_refuses_an_unknown_obs_mode_in_one_line_naming_the_modes(obs):
    with pytest.raises(ValueError, match='choose one of pixels, state, both') as error:
        envs.make('grid_reach', obs=obs, parallel=False)
    assert '\n' not in str(error.value) and repr(obs) in str(error.value)


CHECKED = [(task, settings, obs) for task, settings in [
    ('grid_reach', dict(side=4)), ('bbs_sparse', dict(max_objects=2, max_distractors=1, action_repeat=4)),
    ('gym_CartPole-v1', {})] for obs in ('state', 'both')]
# MuJoCo may not render next to TensorFlow: Fetch in state mode only, not even check_env's rgb_array
# instance (test_dmc_and_dcs_state_in_a_fresh_process renders MuJoCo in both mode).
CHECKED.append(('fetch_PushRed_0to1Distractors_Dense', {}, 'state'))


@pytest.mark.parametrize('task, settings, obs', CHECKED, ids=[f'{task}-{obs}' for task, _, obs in CHECKED])
def test_gymnasium_registration_passes_check_env_with_state(task, settings, obs, monkeypatch):
    mujoco = task.startswith('fetch')
    if mujoco:
        monkeypatch.setattr(fetch.Fetch, 'render', cannot_render)
    render_mode = 'rgb_array' if obs == 'both' else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        env = gymnasium.make('vsg/Env-v0', task=task, render_mode=render_mode, time_limit=40, size=(32, 32), obs=obs,
                             **settings)
        check_env(env.unwrapped, skip_render_check=mujoco)
        observation, info = env.reset(seed=3)
    assert {str(w.message).split('.')[0].removeprefix('\x1b[33mWARN: ') for w in caught} <= set(UNBOUNDED)
    made = envs.make(task, seed=3, time_limit=40, size=(32, 32), obs=obs, parallel=False, **settings)
    state_keys = set(made.state_space)
    assert isinstance(env.observation_space, gymnasium.spaces.Dict)
    assert set(env.observation_space) == state_keys | ({'image'} if obs == 'both' else set())
    same = made.reset()
    for key, value in observation.items():
        np.testing.assert_array_equal(value, same[key], err_msg=key)
    assert set(info) == set(same) - set(observation) - FLAGS - {'image'}  # The suite's scalars.
    if obs == 'both':
        np.testing.assert_array_equal(env.render(), observation['image'])
    env.close()
    made.close()


def test_gymnasium_registration_in_state_mode_renders_only_when_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(grid.Grid, 'render', lambda self, size: calls.append(size) or np.zeros((*size, 3), np.uint8))
    quiet = gymnasium.make('vsg/Env-v0', task='grid_reach', obs='state', size=(16, 16))
    quiet.reset(seed=0)
    quiet.step(0)
    assert calls == [] and quiet.unwrapped.render() is None and set(quiet.observation_space) == {'agent', 'target'}
    shown = gymnasium.make('vsg/Env-v0', task='grid_reach', obs='state', size=(16, 16), render_mode='rgb_array')
    observation, _ = shown.reset(seed=0)
    assert set(observation) == {'agent', 'target'} and shown.render().shape == (16, 16, 3) and len(calls) == 1


def test_dmc_and_dcs_state_in_a_fresh_process(tmp_path):
    result = run_fresh(tmp_path, inspect.getsource(state_episodes) + """
import types, warnings
import gymnasium
from gymnasium.utils.env_checker import check_env
out = {}
for obs, render_mode in (('state', None), ('both', 'rgb_array')):  # DCS is DMC's subclass: DMC alone here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        env = gymnasium.make('vsg/Env-v0', task='dmc_cartpole_balance', render_mode=render_mode, time_limit=20,
                             size=(16, 16), obs=obs)
        check_env(env.unwrapped)
        observation, _ = env.reset(seed=1)
        out[obs] = [sorted(env.observation_space), sorted({str(w.message).split('.')[0] for w in caught}),
                    observation['position'].tolist()]
        env.close()
# Built first, then 'TensorFlow' comes in: any render would now raise.
made = {task: lambda task=task: envs.make(task, seed=2, obs='state', parallel=False, time_limit=30, size=(16, 16))
        for task in ('dmc_cartpole_balance', 'dcs_cartpole_balance', 'dmc_walker_walk')}
built = {task: [make(), make()] for task, make in made.items()}
sys.modules['tensorflow'] = types.ModuleType('tensorflow')
for task, pair in built.items():
    runs = state_episodes(lambda: pair.pop(), steps=5)
    out[task] = [runs[0] == runs[1], {key: len(value) for key, value in runs[0][0].items()}]
report(out)
""")
    warned = sorted(f'\x1b[33mWARN: {message}' for message in UNBOUNDED)
    assert result['state'][:2] == [['position', 'velocity'], warned]
    assert result['both'][:2] == [['image', 'position', 'velocity'], warned]
    assert result['both'][2] == result['state'][2]  # Seeded alike in either mode.
    for task in ('dmc_cartpole_balance', 'dcs_cartpole_balance'):
        assert result[task] == [True, {'position': 3, 'velocity': 2}], task
    assert result['dmc_walker_walk'] == [True, {'orientations': 14, 'height': 1, 'velocity': 9}]
