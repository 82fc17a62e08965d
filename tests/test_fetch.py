"""Tests of the multi-object Fetch suite (envs/fetch.py, envs/fetch_model.py) and scripts/fetch.sh.

Stepping MuJoCo is safe next to TensorFlow (which other test modules import into this pytest
process), rendering is not: tests here drive the suite class without rendering, and whatever
renders runs in a spawned env worker or a fresh process (run_fresh).
"""

import math
import os
import pathlib
import subprocess

import numpy as np
import pytest

import envs
from common import config as config_lib
from fresh_python import run_fresh
from envs import fetch
from envs import fetch_model as scene
from envs.fetch import Fetch

REPO = pathlib.Path(__file__).resolve().parents[1]
STILL = np.zeros(4)


def raw(task, seed=0):
    env = Fetch(task, seed=seed)
    env.reset()
    return env


def place_hand(env, position):
    """Put the mocap and the hand (so the grip site) at `position`, at rest."""
    env.data.mocap_pos[env._mocap] = position
    env.data.qpos[env._hand_qpos:env._hand_qpos + 7] = [*position, 1, 0, 0, 0]
    env.data.qvel[:] = 0


def place_block(env, index, position):
    address = env.model.jnt_qposadr[env.model.body_jntadr[env._objects[index]]]
    env.data.qpos[address:address + 7] = [*position, 1, 0, 0, 0]


def forward(env):
    import mujoco
    mujoco.mj_forward(env.model, env.data)


def run_expert(task, seed):
    """One episode of the expert at action repeat 2 without rendering; (success at the end, return)."""
    env = raw(task, seed)
    total, obs = 0.0, None
    for _ in range(fetch.FRAMES[env.family] // fetch.ACTION_REPEAT):
        action = env.expert_action()
        assert action.shape == (4,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
        for _ in range(fetch.ACTION_REPEAT):
            obs = env.step(action)
            total += float(obs['reward'])
    return obs['success'], total


# --- Names.

def test_task_names_parse_into_family_rule_range_and_reward():
    assert fetch.parse_task('ReachRed_0Distractors_Sparse') == ('Reach', 'Red', 0, 0, False)
    assert fetch.parse_task('PushReddest_1to3Distractors_Dense') == ('Push', 'Reddest', 1, 3, True)
    assert fetch.parse_task('PickOddGroups_4Distractors_Dense') == ('Pick', 'OddGroups', 4, 4, True)
    assert fetch.parse_task('PickOdd_2to4Distractors_Sparse') == ('Pick', 'Odd', 2, 4, False)


@pytest.mark.parametrize('task, fragment', [
    ('fetch_ReachOdd_1Distractors_Dense', 'Odd needs k >= 2'),
    ('fetch_PushOdd_0to4Distractors_Dense', 'Odd needs k >= 2'),
    ('fetch_PickOddGroups_2to4Distractors_Sparse', 'OddGroups needs k >= 4'),
    ('fetch_ReachRed_5Distractors_Dense', 'at most 4 distractors'),
    ('fetch_ReachRed_3to1Distractors_Dense', 'empty range'),
    ('fetch_SlideRed_0Distractors_Dense', 'names are fetch_{Reach,Push,Pick}'),
    ('fetch_ReachBlue_0Distractors_Dense', 'names are fetch_'),
    ('fetch_ReachRed_0Distractors_Shaped', 'names are fetch_'),
])
def test_bad_task_names_are_one_line_errors_saying_what_is_allowed(task, fragment):
    with pytest.raises(ValueError, match=fragment.replace('{', r'\{').replace('}', r'\}')) as error:
        envs.make(task, parallel=False)
    assert '\n' not in str(error.value)
    with pytest.raises(ValueError, match="'bogus' for suite fetch; allowed: none"):
        envs.make('fetch_ReachRed_0Distractors_Dense', parallel=False, bogus=1)


# --- Colours.

# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula": test pairs 1-3, 4, 7, 9, 11,
# 17-20, 21, 25 and 26 of their table (L*a*b* pairs and the published difference).
SHARMA = [
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
    ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
    ((50, 2.8361, -74.0200), (50, 0, -82.7485), 3.4412),
    ((50, -1.3802, -84.2814), (50, 0, -82.7485), 1.0000),
    ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0009), 7.1792),
    ((50, 2.4900, -0.0010), (50, -2.4900, 0.0011), 7.2195),  # The mean hue flips across 180 degrees.
    ((50, 2.5, 0), (73, 25, -18), 27.1492),
    ((50, 2.5, 0), (61, -5, 29), 22.8977),
    ((50, 2.5, 0), (56, -27, -3), 31.9030),
    ((50, 2.5, 0), (58, 24, 15), 19.4535),
    ((50, 2.5, 0), (50, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
]


def test_ciede2000_matches_published_pairs_and_a_hand_computation():
    first, second, expected = (np.array(column, np.float64) for column in zip(*SHARMA))
    np.testing.assert_allclose(fetch.ciede2000(first, second), expected, atol=5e-5)
    np.testing.assert_allclose(fetch.ciede2000(second, first), expected, atol=5e-5)  # Symmetric.
    # Greys differing in lightness only: dE = dL / S_L, S_L = 1 + 0.015 (55 - 50)^2 / sqrt(20 + 25).
    assert fetch.ciede2000((50, 0, 0), (60, 0, 0)) == pytest.approx(10 / (1 + 0.015 * 25 / math.sqrt(45)))
    assert fetch.ciede2000((40, 10, -5), (40, 10, -5)) == 0
    # sRGB red in L*a*b* (D65) is (53.24, 80.09, 67.20); white is (100, 0, 0).
    np.testing.assert_allclose(fetch.srgb_to_lab((255, 0, 0)), (53.2408, 80.0925, 67.2032), atol=1e-3)
    np.testing.assert_allclose(fetch.srgb_to_lab((255, 255, 255)), (100, 0, 0), atol=1e-3)


def test_palette_has_sixteen_colours_with_distinct_distances_from_red():
    assert len(fetch.PALETTE) == 16 and len(set(fetch.PALETTE.values())) == 16
    assert fetch.PALETTE['red'] == (255, 0, 0) and fetch.REDNESS['red'] == 0
    assert len(set(fetch.REDNESS.values())) == 16  # The reddest colour of a draw is never a tie.
    assert min(fetch.REDNESS, key=lambda name: fetch.REDNESS[name] or 1e9) == 'maroon'


def painted(env):
    """Palette names of the objects in play, read back from the model's geom colours."""
    by_rgb = {rgb: name for name, rgb in fetch.PALETTE.items()}
    rgba = env.model.geom_rgba[env._object_geoms[:env.distractors + 1]]
    return [by_rgb[tuple(int(round(value)) for value in 255 * colour[:3])] for colour in rgba]


@pytest.mark.parametrize('family', ['Reach', 'Push'])
def test_colour_rules_pick_the_target_and_distractor_colours(family):
    seen = {}
    for rule, count in (('Red', 4), ('Reddest', 4), ('Odd', 3), ('OddGroups', 4), ('Reddest', 0)):
        env = Fetch(f'{family}{rule}_{count}Distractors_Dense', seed=1)
        for _ in range(8):
            env.reset()
            colours = env.colours
            assert painted(env) == colours and len(colours) == count + 1
            target, distractors = colours[0], colours[1:]
            if rule == 'Red':
                assert target == 'red' and 'red' not in distractors
            elif rule == 'Reddest':
                assert len(set(colours)) == len(colours)
                assert all(fetch.REDNESS[target] < fetch.REDNESS[other] for other in distractors)
            elif rule == 'Odd':
                assert len(set(distractors)) == 1 and target not in distractors
            else:
                first, second = distractors[0], distractors[1]
                assert distractors == [first, second, first, second] and len({target, first, second}) == 3
            seen.setdefault(rule, set()).add(target)
    assert len(seen['Reddest']) > 1 and len(seen['Odd']) > 1  # Targets vary between episodes.


# --- Layouts and counts.

def test_distractor_counts_are_drawn_in_the_range_and_the_rest_are_parked():
    env = Fetch('PushRed_1to3Distractors_Dense', seed=0)
    counts = set()
    for _ in range(30):
        env.reset()
        counts.add(env.distractors)
        on_table = [env.position(i)[2] > scene.TABLE_TOP for i in range(scene.MAX_OBJECTS)]
        assert on_table == [i <= env.distractors for i in range(scene.MAX_OBJECTS)]
    assert counts == {1, 2, 3}
    assert {raw('ReachOdd_2Distractors_Sparse', seed).distractors for seed in range(5)} == {2}


def test_layouts_keep_objects_apart_above_the_table_and_goals_clear_of_blocks():
    start = np.array(scene.GRIP_START)
    env = Fetch('ReachRed_4Distractors_Dense', seed=2)
    for _ in range(10):
        env.reset()
        centres = np.array([env.position(i) for i in range(5)])
        assert np.all(np.abs(centres - start) <= fetch.OBJECT_RANGE)
        assert np.all(centres[:, 2] >= scene.TABLE_TOP + scene.SPHERE_RADIUS)
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(5, 1)]
        assert gaps.min() >= fetch.MIN_SPHERE_GAP
    lifts = []
    for family in ('Push', 'Pick'):
        env = Fetch(f'{family}Red_4Distractors_Dense', seed=3)
        for _ in range(20):
            env.reset()
            centres = np.array([env.position(i) for i in range(5)])
            np.testing.assert_allclose(centres[:, 2], scene.TABLE_TOP + scene.BLOCK_HALF, atol=1e-9)
            gaps = np.linalg.norm(centres[:, None, :2] - centres[None, :, :2], axis=-1)[np.triu_indices(5, 1)]
            assert gaps.min() >= fetch.MIN_BLOCK_GAP
            goal = env.goal
            assert np.linalg.norm(centres[:, :2] - goal[:2], axis=-1).min() >= 0.04 + math.sqrt(2) * 0.045
            assert np.all(np.abs(goal[:2] - start[:2]) <= fetch.OBJECT_RANGE)
            lift = goal[2] - (scene.TABLE_TOP + scene.BLOCK_HALF)
            assert 0 <= lift <= fetch.MAX_LIFT
            lifts.append((family, lift > 0))
            assert not env.success()
    assert not any(lifted for family, lifted in lifts if family == 'Push')
    assert 4 <= sum(lifted for family, lifted in lifts if family == 'Pick') <= 16


# --- Rewards and success.

@pytest.mark.parametrize('offset, solved', [(0.03, True), (0.049, True), (0.07, False), (0.2, False)])
def test_reach_rewards_and_success_at_placed_states(offset, solved):
    dense, sparse = raw('ReachRed_2Distractors_Dense'), raw('ReachRed_2Distractors_Sparse')
    for env in (dense, sparse):
        target = env.position(0)
        place_hand(env, target + np.array([0, offset, 0]))
        forward(env)
        assert np.linalg.norm(env.grip - target) == pytest.approx(offset, abs=1e-9)
        assert env.success() == solved
    assert dense.reward() == pytest.approx(math.exp(-20 * offset))
    assert sparse.reward() == (0.0 if solved else -1.0)
    # A step's obs carries the reward and success of the state it ends in.
    obs = dense.step(STILL)
    distance = np.linalg.norm(dense.grip - dense.position(0))
    assert obs['reward'] == pytest.approx(math.exp(-20 * distance), rel=1e-5)
    assert obs['success'] == (distance < 0.05) and isinstance(obs['success'], bool)


@pytest.mark.parametrize('family', ['Push', 'Pick'])
def test_block_rewards_and_success_at_placed_states(family):
    dense, sparse = raw(f'{family}Red_1Distractors_Dense', 4), raw(f'{family}Red_1Distractors_Sparse', 4)
    for distance, solved in ((0.04, True), (0.06, False)):
        for env in (dense, sparse):
            goal = env.goal
            block = goal + np.array([distance * 0.6, -distance * 0.8, 0])
            place_block(env, 0, block)
            place_hand(env, block + np.array([0.0, 0.0, 0.12]))
            forward(env)
            np.testing.assert_allclose(env.position(0), block, atol=1e-12)
            assert env.success() == solved
        grip_distance = np.linalg.norm(dense.grip - dense.position(0))
        assert grip_distance == pytest.approx(0.12, abs=1e-9)
        assert dense.reward() == pytest.approx(0.9 * math.exp(-20 * distance) + 0.1 * math.exp(-10 * 0.12))
        assert sparse.reward() == (0.0 if solved else -1.0)
        obs = sparse.step(STILL)
        assert obs['reward'] == (0.0 if sparse.success() else -1.0) and obs['success'] == sparse.success()


# --- Actions.

def test_a_unit_action_moves_the_mocap_five_centimetres_per_step_clipped():
    env = raw('PickRed_0Distractors_Dense')
    start = env.mocap
    env.step(np.array([1, 0, -1, 0]))
    np.testing.assert_allclose(env.mocap - start, [0.05, 0, -0.05], atol=1e-12)
    env.step(np.array([3, -7, 0.5, 0]))  # Clipped to [-1, 1].
    np.testing.assert_allclose(env.mocap - start, [0.10, -0.05, -0.025], atol=1e-12)
    for _ in range(5):
        env.step(STILL)
    assert np.linalg.norm(env.grip - env.mocap) < 0.005  # The hand follows the mocap.
    for _ in range(30):
        env.step(np.array([1, 1, -1, 0]))
    low, high = fetch.WORKSPACE
    np.testing.assert_allclose(env.mocap, [high[0], high[1], low[2]])  # Stopped at the workspace.
    with pytest.raises(ValueError, match='shape'):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match='not finite'):
        env.step(np.array([0, np.nan, 0, 0]))


def test_the_fourth_action_opens_and_closes_the_fingers_except_in_push():
    env = raw('PickRed_0Distractors_Dense')
    for command, opening in ((1, scene.FINGER_TRAVEL), (-1, 0.0), (0, scene.FINGER_TRAVEL / 2)):
        for _ in range(10):
            env.step(np.array([0, 0, 0, command]))
        np.testing.assert_allclose(env.finger_opening(), opening, atol=2e-3)
    push = raw('PushRed_0Distractors_Dense')
    assert push.model.nu == 0 and push.finger_opening().size == 0  # Fixed, closed fingers.
    closing, opening = raw('PushRed_0Distractors_Dense', 5), raw('PushRed_0Distractors_Dense', 5)
    closing.step(np.array([0.3, 0.2, -0.5, -1]))
    opening.step(np.array([0.3, 0.2, -0.5, 1]))
    np.testing.assert_array_equal(closing.data.qpos, opening.data.qpos)


# --- Determinism, episodes through envs.make.

def test_same_seed_same_states_bit_for_bit_and_reset_continues_the_stream():
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 4))
    runs = []
    for seed in (7, 7, 8):
        env = raw('PickRed_0to4Distractors_Dense', seed)
        states = [env.data.qpos.copy()]
        for action in actions:
            env.step(action)
            states.append(env.data.qpos.copy())
        env.reset()
        runs.append((np.array(states), env.data.qpos.copy(), env.colours))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])
    assert not np.array_equal(runs[0][0][0], runs[0][1])  # The next episode is another one.


def test_episodes_through_make_last_fifty_and_hundred_agent_steps_with_identical_images():
    made = {}
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        made[name] = envs.make('fetch_ReachRed_0to4Distractors_Dense', seed=seed, size=(16, 16), action_repeat=2,
                               time_limit=fetch.FRAMES['Reach'])
    try:
        env = made['a']
        assert env.act_space['action'].shape == (4,) and set(env.obs_space) >= {'image', 'success'}
        episodes = {name: [made[name].reset()] for name in ('a', 'b')}
        other = made['c'].reset()
        for action in np.random.default_rng(1).uniform(-1, 1, (50, 4)).astype(np.float32):
            for name in ('a', 'b'):
                episodes[name].append(made[name].step(action))
        for first, second in zip(*episodes.values()):
            for key in first:
                np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        flags = [obs['is_last'] for obs in episodes['a'][1:]]
        assert flags == [False] * 49 + [True] and not any(obs['is_terminal'] for obs in episodes['a'])
        assert episodes['a'][0]['image'].shape == (16, 16, 3)
        assert len({obs['image'].tobytes() for obs in episodes['a']}) > 10  # The gripper moves.
        assert not np.array_equal(other['image'], episodes['a'][0]['image'])
        with pytest.raises(RuntimeError, match='reset'):
            env.step(np.zeros(4, np.float32))
    finally:
        for env in made.values():
            env.close()
    push = envs.make('fetch_PushRed_0Distractors_Sparse', size=(16, 16), action_repeat=2, time_limit=fetch.FRAMES['Push'])
    try:
        push.reset()
        steps = [push.step(np.zeros(4, np.float32)) for _ in range(100)]
        assert [obs['is_last'] for obs in steps] == [False] * 99 + [True]
        assert steps[0]['reward'] == -2.0  # Two unsolved env frames per agent step.
    finally:
        push.close()


# --- The scripted expert.

def test_the_expert_solves_reach_and_push_for_most_seeds_and_random_actions_do_not():
    for task in ('ReachRed_0to4Distractors_Dense', 'PushRed_0to4Distractors_Dense'):
        solved = [run_expert(task, seed)[0] for seed in range(5)]
        assert sum(solved) >= 4, (task, solved)
    env = raw('PushRed_0to4Distractors_Dense', 0)
    rng, obs = np.random.default_rng(0), None
    for _ in range(fetch.FRAMES['Push']):
        obs = env.step(rng.uniform(-1, 1, 4))
    assert not obs['success']


def test_the_expert_picks_a_block_up_and_carries_it_to_a_goal_in_the_air():
    seeds = [seed for seed in range(20) if raw('PickRed_1Distractors_Dense', seed).goal[2] > 0.6][:2]
    assert len(seeds) == 2
    for seed in seeds:
        env = raw('PickRed_1Distractors_Dense', seed)
        heights = []
        for _ in range(fetch.FRAMES['Pick'] // 2):
            action = env.expert_action()
            env.step(action), env.step(action)
            heights.append(env.position(0)[2])
        assert max(heights) > 0.6 and env.success(), seed  # Lifted off the table by friction alone.


# --- State observations (no rendering: safe in this process).

def test_state_keys_and_sizes_per_family_and_distractor_range():
    sizes = lambda task: {key: space.shape[0] for key, space in Fetch(task).state_space.items()}
    reach = {'gripper_pos': 3, 'gripper_vel': 3, 'finger_width': 1, 'object_pos': 15, 'goal': 3}
    assert sizes('ReachRed_4Distractors_Dense') == reach
    assert sizes('ReachRed_0to4Distractors_Dense') == {**reach, 'object_present': 5}
    assert sizes('PushOdd_2Distractors_Sparse') == {**reach, 'object_pos': 9, 'object_vel': 9, 'object_quat': 12}
    assert sizes('PickRed_0to1Distractors_Dense') == {**reach, 'object_pos': 6, 'object_vel': 6, 'object_quat': 8,
                                                      'object_present': 2}


def test_state_reads_the_grip_objects_and_goal_and_zeros_absent_slots():
    env = Fetch('PickRed_1to3Distractors_Dense', seed=2)
    for _ in range(6):
        env.reset()
        for action in np.random.default_rng(0).uniform(-1, 1, (3, 4)):
            env.step(action)
        state, count = env.state(), env.distractors + 1
        np.testing.assert_allclose(state['gripper_pos'], env.grip, rtol=1e-6)
        np.testing.assert_allclose(state['goal'], env.goal, rtol=1e-6)
        positions = state['object_pos'].reshape(4, 3)
        np.testing.assert_allclose(positions[:count], [env.position(i) for i in range(count)], rtol=1e-6)
        assert state['object_present'].tolist() == [1] * count + [0] * (4 - count)
        for key, width in (('object_pos', 3), ('object_vel', 3), ('object_quat', 4)):
            assert not state[key].reshape(4, width)[count:].any(), key
        np.testing.assert_allclose(np.linalg.norm(state['object_quat'].reshape(4, 4)[:count], axis=1), 1, rtol=1e-5)
    reach = raw('ReachRed_0Distractors_Dense', 1).state()
    assert reach['goal'].tolist() == reach['object_pos'].tolist()  # Reach's goal is the target sphere.


def test_state_tracks_the_gripper_the_fingers_and_a_pushed_block():
    env = raw('PickRed_0Distractors_Dense')
    start = env.state()
    assert start['gripper_vel'].tolist() == [0, 0, 0]
    assert start['finger_width'][0] == pytest.approx(scene.FINGER_GAP, abs=1e-6)
    for _ in range(3):
        env.step(np.array([1, 0, 0, 1]))  # +x, fingers opening.
    moved = env.state()
    shift = moved['gripper_pos'] - start['gripper_pos']
    assert shift[0] > 0.1 and np.all(np.abs(shift[1:]) < 0.01) and moved['gripper_vel'][0] > 0.1
    assert moved['finger_width'][0] > scene.FINGER_GAP + scene.FINGER_TRAVEL  # Both fingers open.
    push = raw('PushRed_0Distractors_Dense', 3)
    block = push.position(0)
    place_hand(push, block + np.array([-0.1, 0, 0.01]))  # Behind the block along x, at its height.
    forward(push)
    for _ in range(4):
        push.step(np.array([0.6, 0, 0, -1]))
    state = push.state()
    assert state['object_pos'][0] > block[0] + 0.01 and state['object_vel'][0] > 0.05  # Pushed along +x.


def test_state_mode_through_make_never_renders(monkeypatch):
    def cannot_render(self, size):
        raise AssertionError('state mode rendered')
    monkeypatch.setattr(Fetch, 'render', cannot_render)
    env = envs.make('fetch_ReachRed_0to4Distractors_Dense', obs='state', parallel=False, time_limit=fetch.FRAMES['Reach'])
    obs = env.reset()
    assert 'image' not in obs and obs['object_present'].sum() == env.distractors + 1
    steps = [env.step(np.array([1, 0, 0, -1], np.float32)) for _ in range(3)]
    assert steps[-1]['gripper_pos'][0] > obs['gripper_pos'][0] + 0.2  # Two frames of 0.05 m per agent step.


# --- Rendering, gymnasium, command line (fresh processes).

def test_gymnasium_check_env_rendering_and_the_command_line_without_tensorflow(tmp_path):
    result = run_fresh(tmp_path, """
        import inspect, warnings
        import gymnasium
        from gymnasium.utils.env_checker import check_env
        from envs import fetch
        task = 'fetch_ReachRed_0to4Distractors_Dense'
        kwargs = dict(time_limit=100, size=(32, 32))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            env = gymnasium.make('vsg/Env-v0', task=task, render_mode='rgb_array', **kwargs)
            check_env(env.unwrapped)
            image, info = env.reset(seed=3)
            same = envs.make(task, seed=3, parallel=False, **kwargs).reset()['image']
            out = [list(inspect.signature(fetch.Fetch).parameters), str(env.observation_space), str(env.action_space),
                   np.array_equal(image, same), np.array_equal(env.render(), image), info,
                   [str(w.message) for w in caught]]
            env.close()
        raw = fetch.Fetch('PickOddGroups_4Distractors_Dense', seed=0)
        raw.reset()
        frames = [raw.render((24, 40)), raw.render((64, 64))]
        out.append([list(frame.shape) for frame in frames] + [str(frames[1].dtype), float(frames[1].std())])
        raw.close()
        fetch._main(['--strip', 'strip.png', '--size', '16'])
        from PIL import Image
        out.append(list(np.asarray(Image.open('strip.png')).shape))
        out.append('tensorflow' in sys.modules)
        report(out)
    """)
    assert result[:7] == [['task', 'seed'], 'Box(0, 255, (32, 32, 3), uint8)', 'Box(-1.0, 1.0, (4,), float32)',
                          True, True, {'success': False}, []]
    assert result[7][:3] == [[24, 40, 3], [64, 64, 3], 'uint8'] and result[7][3] > 10
    assert result[8] == [3 * 16 + 2 * 4, 6 * 16 + 5 * 4, 3]  # Rows Reach, Push, Pick; 6 frames each.
    assert result[9] is False


# --- scripts/fetch.sh

def fetch_sh(*args):
    env = {**os.environ, 'PYTHON': 'echo', 'LOGDIR': '/runs'}  # echo prints the command it would run
    return subprocess.run(['bash', 'scripts/fetch.sh', *args], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.mark.parametrize('task, model, core, frames', [
    ('ReachRed_0to4Distractors_Dense', 'DreamerV2', 'rssm', 100),
    ('PushOdd_2Distractors_Sparse', 'VSG', 'vsg', 200),
    ('PickOddGroups_4Distractors_Dense', 'SVSG', 'svsg', 200)])
def test_fetch_sh_maps_arguments_onto_flags(task, model, core, frames):
    result = fetch_sh(task, model, 'base', '7', '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    assert argv[:2] == ['-m', 'vsg.train']
    config = config_lib.load(argv[2:])
    assert config.core == core and config.task == f'fetch_{task}' and config.seed == 7 and config.batch_size == 4
    assert config.env.action_repeat == 2 and config.env.time_limit == frames
    assert config.kl.free == 1.0  # The dmc named config.
    assert config.logdir == f'/runs/fetch_{task}/{model}_base/seed_7'
    if core != 'rssm':
        assert config.gate.prior == 0.4


@pytest.mark.parametrize('args, fragment', [
    (('SlideRed_0Distractors_Dense', 'VSG', 'base', '1'), "error: TASK 'SlideRed_0Distractors_Dense' must be"),
    (('fetch_ReachRed_0Distractors_Dense', 'VSG', 'base', '1'), 'without the fetch_ prefix'),
    (('ReachRed_0Distractors_Dense', 'VSG2', 'base', '1'), "MODEL 'VSG2' is not supported"),
    (('ReachRed_0Distractors_Dense', 'VSG', 'base', 'one'), "SEED 'one' must be a whole number"),
    (('ReachRed_0Distractors_Dense', 'VSG', 'base'), 'usage: bash scripts/fetch.sh'),
])
def test_fetch_sh_rejects_bad_arguments_in_one_line(args, fragment):
    result = fetch_sh(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and not result.stdout
    assert len(lines) == 1 and fragment in lines[0]
