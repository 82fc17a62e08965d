"""Tests of BringBackShapes (envs/bbs.py), the wrappers' attribute forwarding it relies on, and the
viewer vsg.show. BBS draws with PIL and simulates with pymunk, so every env here runs in process."""
import copy
import json
import math
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pymunk
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import bbs, wrappers
from envs.bbs import BBS
from vsg import show

FAST = dict(parallel=False, size=(64, 64), action_repeat=4)
STILL = np.array([-1, -1], np.float32)  # No force.


def raw(task='sparse', seed=0, **settings):
    env = BBS(task, seed=seed, **settings)
    env.reset()
    return env


def random_actions(count, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, 2)).astype(np.float32)


def place(thing, x, y, velocity=(0, 0)):
    thing.body.position, thing.body.velocity, thing.body.angle = (x, y), velocity, 0.0
    thing.body.angular_velocity = 0.0


def in_goal(env):
    return env.width + bbs.GOAL_WIDTH / 2, env.goal_y + env.goal_height / 2


def test_same_seed_gives_the_same_episodes_bit_for_bit_and_other_seeds_differ():
    settings = dict(max_objects=3, max_distractors=2, time_limit=3000, **FAST)
    first, second = envs.make('bbs_dense', seed=0, **settings), envs.make('bbs_dense', seed=0, **settings)
    episodes = {0: [first.reset()], 1: [second.reset()]}
    for action in random_actions(50):  # Interleaved, so that no state is shared between envs.
        episodes[0].append(first.step(action))
        episodes[1].append(second.step(action))
    for a, b in zip(*episodes.values()):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    images = [obs['image'] for obs in episodes[0]]
    assert len({image.tobytes() for image in images}) > 10  # The agent moves.
    other = envs.make('bbs_dense', seed=1, **settings)
    assert not np.array_equal(other.reset()['image'], images[0])
    # reset() continues the seed's stream: the next episode starts elsewhere, the same in both envs.
    assert not np.array_equal(first.reset()['image'], images[0])
    np.testing.assert_array_equal(first.render_arena(100), (second.reset(), second.render_arena(100))[1])


def test_spaces_and_obs_extras():
    env = envs.make('bbs_sparse', max_objects=4, **FAST)
    assert env.act_space['action'] == gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    assert env.obs_space['log_scored'] == gymnasium.spaces.Box(0, 4, (), np.int32)
    assert env.obs_space['image'].shape == (64, 64, 3)
    for obs in (env.reset(), env.step(np.zeros(2, np.float32))):
        assert obs.keys() == env.obs_space.keys()
        for key, value in obs.items():
            assert np.asarray(value).dtype == env.obs_space[key].dtype, key
            assert np.asarray(value) in env.obs_space[key], key
        assert not obs['success'] and obs['log_scored'] == 0
    assert raw().render((40, 24)).shape == (40, 24, 3)


def test_layout_objects_in_the_left_of_the_arena_apart_from_each_other_and_the_agent():
    env = BBS('sparse', seed=4, max_objects=5, max_distractors=6)
    kinds = set()
    for _ in range(10):
        env.reset()
        assert len(env.objects) == 5 and len(env.distractors) == 6
        bodies = [env.agent, *env.objects, *env.distractors]
        assert len(env.space.bodies) == len(bodies)
        for thing in env.objects:
            x, y = thing.body.position
            assert thing.radius <= x <= 0.7 * env.width - thing.radius
            assert thing.radius <= y <= env.length - thing.radius
            assert thing.body.mass == bbs.OBJECT_MASS and thing.colour in bbs.COLOURS.values()
            kinds.add(thing.kind)
        for i, a in enumerate(bodies):
            for b in bodies[i + 1:]:
                assert (a.body.position - b.body.position).length > a.radius + b.radius
    assert kinds == set(bbs.SHAPES)


def test_distractor_count_and_brownian_motion():
    assert len(raw().distractors) == 0
    env = raw(max_distractors=3)
    assert len(env.distractors) == 3 and len(env.space.bodies) == 1 + 5 + 3
    start = [thing.body.position for thing in env.distractors]
    headings = []
    for _ in range(60):
        env.step(STILL)
        headings.append([math.atan2(*thing.body.velocity) for thing in env.distractors])
    assert all((thing.body.position - p).length > 5 for thing, p in zip(env.distractors, start))
    assert np.ptp(np.array(headings), 0).min() > 1  # Each changes direction.
    counts = set()
    variable = BBS('sparse', max_distractors=3, variable_num_distractors=True)
    for _ in range(30):
        variable.reset()
        counts.add(len(variable.distractors))
    assert counts == {0, 1, 2, 3}


def test_variable_num_objects_draws_counts_in_one_to_max():
    env = BBS('sparse', max_objects=3, variable_num_objects=True)
    counts = set()
    for _ in range(30):
        env.reset()
        counts.add(len(env.objects))
    assert counts == {1, 2, 3}
    fixed = BBS('sparse', max_objects=3)
    assert {(fixed.reset(), len(fixed.objects))[1] for _ in range(5)} == {3}


def test_variable_goal_position_moves_the_goal_along_the_right_wall():
    centred = {raw(seed=seed).goal_y for seed in range(5)}
    env = raw()
    assert centred == {(env.length - env.goal_height) / 2} and env.goal_height == 0.5 * (700 - 250)
    positions = [raw(seed=seed, variable_goal_position=True).goal_y for seed in range(8)]
    assert len(set(positions)) == 8
    assert all(0 <= y <= env.length - env.goal_height for y in positions)
    # The goal is where it is drawn and where the walls leave the opening.
    moved = raw(seed=3, variable_goal_position=True)
    frame = moved.render_arena((95, 105))  # 10 world px per pixel.
    row = round((moved.goal_y + moved.goal_height / 2 + bbs.WALL) / 10)
    assert tuple(frame[row, round((moved.width + bbs.WALL + 50) / 10)]) != tuple(frame[5, 100])
    point = (moved.width + 50, moved.goal_y + 5)
    for category, blocked in ((bbs.CAT_OBJECT, False), (bbs.CAT_AGENT, True), (bbs.CAT_DISTRACTOR, True)):
        hit = moved.space.point_query_nearest(point, 0, pymunk.ShapeFilter(categories=category))
        assert (hit is not None) == blocked, category


def test_arena_scale_enlarges_the_world_not_the_view():
    small, large = raw(seed=0), raw(seed=0, arena_scale=2.0)
    assert (large.width, large.length) == (1600, 1400) and (small.width, small.length) == (800, 700)
    assert large.goal_height == 0.5 * (1400 - 250)
    placed = []
    for env in (small, large):
        for i, thing in enumerate(env.objects):  # Far from the agent's view.
            place(thing, 0.5 * env.width + 60 * i, env.length - 40)
        place(env.agent, 60, 70)
        placed.append(env.render((64, 64)))
    np.testing.assert_array_equal(*placed)  # Same corner, same view at the same pixel scale.
    # The whole arena at the same height: the agent is smaller in the larger one.
    agent_pixels = [np.all(env.render_arena(400) == bbs.AGENT_COLOUR, -1).sum() for env in (small, large)]
    assert 0 < agent_pixels[1] < 0.5 * agent_pixels[0]
    # The view's side is 2 * agent_view_size world px: half as wide a view makes the agent twice as big.
    sizes = []
    for view in (125, 62.5):
        env = raw(agent_view_size=view)
        place(env.agent, 400, 350)
        for i, thing in enumerate(env.objects):
            place(thing, 40 + 60 * i, 40)
        sizes.append(np.all(env.render((100, 100)) == bbs.AGENT_COLOUR, -1).sum())
    assert sizes[1] == pytest.approx(4 * sizes[0], rel=0.25)


def test_view_is_centred_on_the_agent_with_the_outside_of_the_arena_greyed():
    env = raw()
    place(env.agent, 40, 350)  # Near the left wall: the view's left 85 of 250 px lie in it.
    for i, thing in enumerate(env.objects):
        place(thing, 400 + 60 * i, 40)
    frame = env.render((250, 250))
    wall = np.round(np.array(bbs.WALL_COLOUR) * (1 - bbs.OVERLAY_ALPHA) + bbs.OVERLAY * bbs.OVERLAY_ALPHA)
    np.testing.assert_array_equal(frame[:, :84], np.broadcast_to(wall, (250, 84, 3)))
    np.testing.assert_array_equal(frame[5, 100], bbs.FLOOR)
    np.testing.assert_array_equal(frame[125, 125], bbs.AGENT_COLOUR)
    arena = env.render_arena((95, 105))  # Outside the view (top right) is greyed, inside is not.
    assert tuple(arena[47, 13]) == bbs.FLOOR and tuple(arena[47, 60]) != bbs.FLOOR


def test_scoring_gives_one_per_shape_and_the_dense_bonus_and_ends_with_success():
    env = raw('dense', max_objects=3)
    first, second, third = env.objects
    place(env.agent, 400, 600)
    for i, thing in enumerate(env.objects):  # Parked apart, at rest.
        place(thing, 60 + 80 * i, 60)
    for _ in range(299):
        assert env.step(STILL)['reward'] == 0
    place(first, *in_goal(env))
    obs = env.step(STILL)  # Step 300: bonus 1.5 - 0.3.
    assert obs['reward'] == pytest.approx(1 + 1.2, rel=1e-6) and obs['log_scored'] == 1
    assert not obs['is_last'] and not obs['success'] and first not in env.objects
    assert first.body not in env.space.bodies
    assert env.step(STILL)['reward'] == 0  # Counted once.
    for _ in range(1300):
        env.step(STILL)
    x, y = in_goal(env)
    place(second, x, y - 40)
    place(third, x, y + 40)
    obs = env.step(STILL)  # Step 1602: no bonus left; both at once.
    assert obs['reward'] == 2 and obs['log_scored'] == 3
    assert obs['is_last'] and obs['is_terminal'] and obs['success']


def test_shaping_is_a_difference_of_potentials_that_pays_for_pushing_a_shape_in():
    plain, shaped = raw('sparse', seed=3, max_objects=2), raw('sparse', seed=3, max_objects=2, shaping=2.0)
    x, y = in_goal(shaped)
    for env in (plain, shaped):
        place(env.objects[0], env.width - 100, y, velocity=(300, 0))
    start = shaped.potential()   # the teleport itself is not a step: measure from here
    shaped._potential = start
    steps = [(plain.step(action), shaped.step(action)) for action in random_actions(60, seed=1)]
    extra = [float(b['reward']) - float(a['reward']) for a, b in steps]
    assert sum(float(a['reward']) for a, _ in steps) == 1 and len(shaped.objects) == 1   # scored in both
    # The shaping terms telescope: their sum is shaping * (phi_end - phi_start) (up to float32 rewards).
    assert sum(extra) == pytest.approx(2.0 * (shaped.potential() - start), abs=1e-5)
    assert any(abs(e) > 1e-6 for e in extra)
    # Scoring drops the shape's distance from phi: that step pays at least its last distance to the mouth.
    index = next(i for i, (a, _) in enumerate(steps) if a['reward'] == 1)
    assert extra[index] > 0
    with pytest.raises(ValueError, match=r'bbs shaping=-1 must be a number >= 0'):
        BBS('sparse', shaping=-1)


def test_a_shape_pushed_through_the_mouth_scores_once_in_the_sparse_task():
    env = raw('sparse', max_objects=2)
    place(env.objects[1], 60, 60)
    place(env.agent, 60, env.length - 60)
    x, y = in_goal(env)
    place(env.objects[0], env.width - 100, y, velocity=(300, 0))  # 5 px a step toward the goal.
    rewards = [float(env.step(STILL)['reward']) for _ in range(60)]
    assert rewards.count(1.0) == 1 and sum(rewards) == 1
    assert 14 <= rewards.index(1.0) <= 30 and len(env.objects) == 1


def test_a_shape_sunk_into_the_wall_beside_the_mouth_does_not_score():
    env = raw('sparse', max_objects=1)
    place(env.agent, 60, env.length - 60)
    place(env.objects[0], env.width + 5, env.goal_y - 30)  # Centre past the face, outside the mouth.
    rewards = [float(env.step(STILL)['reward']) for _ in range(30)]
    assert sum(rewards) == 0 and len(env.objects) == 1
    assert env.objects[0].body.position.x < env.width  # The wall pushed it back out.


def test_only_shapes_enter_the_goal():
    env = raw(max_distractors=1)
    y = env.goal_y + env.goal_height / 2
    for i, thing in enumerate(env.objects):
        place(thing, 60 + 60 * i, 60)
    place(env.agent, env.width - 60, y)
    place(env.distractors[0], env.width - 60, y - 60, velocity=(600, 0))
    right = np.array([-1, 1], np.float32)  # Angle 0 (rightward), full force.
    for _ in range(120):
        env.step(right)
        # The disc may sink a few px into the pocket's box on impact (Chipmunk's soft contacts).
        assert env.agent.body.position.x < env.width - bbs.AGENT_RADIUS + 6
        assert env.distractors[0].body.position.x < env.width
    assert env.agent.body.position.x == pytest.approx(env.width - bbs.AGENT_RADIUS, abs=0.5)  # Pressed on it.
    assert env.step(right)['reward'] == 0


@pytest.mark.parametrize('edge', ['top', 'bottom'])
@pytest.mark.parametrize('offset', [-12.0, -4.0, 0.0, 4.0, 12.0])
@pytest.mark.parametrize('phase', [0.0, 8.0, 16.0])
def test_the_agent_cannot_slip_out_along_the_goal_mouths_edges(edge, offset, phase):
    # Regression: the pocket's box and the walls beside it used to meet in a seam along which a disc
    # driven at full speed slid out of the arena (the two boxes pushed it apart, not back).
    env = raw()
    for i, thing in enumerate(env.objects):
        place(thing, 60 + 60 * i, 60)
    y = (env.goal_y if edge == 'top' else env.goal_y + env.goal_height) + offset
    place(env.agent, env.width - 100 + phase, y, velocity=(bbs.MAX_SPEED, 0))
    right = np.array([-1, 1], np.float32)
    for _ in range(60):
        env.step(right)
        # At 25 px a step it may sink into the wall by up to a radius, never through it.
        assert env.agent.body.position.x < env.width + bbs.AGENT_RADIUS
    assert env.agent.body.position.x == pytest.approx(env.width - bbs.AGENT_RADIUS, abs=1)  # Pressed on it.


def test_actions_map_to_direction_and_force_and_are_clipped():
    moves = {}  # The velocity gained in one step from rest.
    for name, action in {'right': [-1, 1], 'down': [-0.5, 1], 'left': [0, 1], 'still': [0.3, -1],
                         'half': [-1, 0], 'round': [1, 1]}.items():
        env = raw()
        env.step(np.array(action, np.float32))
        moves[name] = env.agent.body.velocity
    assert moves['right'].x > 0 and abs(moves['right'].y) < 1e-9
    assert moves['left'].x < 0 and moves['down'].y > 0 and abs(moves['down'].x) < 1e-6
    assert moves['still'].length == 0
    # Velocity gained in a step: force * 100 sub-steps / mass * dt.
    assert moves['right'].x == pytest.approx(400 * 100 / 10 / 60, rel=1e-9)
    assert moves['round'].x == pytest.approx(moves['right'].x) and abs(moves['round'].y) < 1e-6
    assert moves['half'].x == pytest.approx(moves['right'].x / 2, rel=1e-6)
    clipped, exact = envs.make('bbs_sparse', **FAST), envs.make('bbs_sparse', **FAST)
    clipped.reset(), exact.reset()
    np.testing.assert_array_equal(clipped.step(np.array([7, 3], np.float32))['image'],
                                  exact.step(np.array([1, 1], np.float32))['image'])
    for env in (clipped, raw()):
        with pytest.raises(ValueError, match='shape'):
            env.step(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match='shape'):
            env.step(np.zeros((1, 2), np.float32))


def test_time_limit_through_make_ends_without_terminal():
    env = envs.make('bbs_sparse', time_limit=40, **FAST)
    env.reset()
    steps = [env.step(STILL) for _ in range(10)]
    assert [obs['is_last'] for obs in steps] == [False] * 9 + [True]
    assert not steps[-1]['is_terminal'] and not steps[-1]['success']
    with pytest.raises(RuntimeError, match='reset'):
        env.step(STILL)


@pytest.mark.parametrize('name, settings, match', [
    ('bbs_sparse', dict(max_objects=0), 'max_objects=0'),
    ('bbs_sparse', dict(max_objects=6), 'max_objects=6'),
    ('bbs_sparse', dict(max_objects=2.0), 'max_objects=2.0'),
    ('bbs_sparse', dict(max_distractors=-1), 'max_distractors=-1'),
    ('bbs_sparse', dict(variable_goal_position='yes'), 'variable_goal_position'),
    ('bbs_sparse', dict(agent_view_size=0), 'agent_view_size=0'),
    ('bbs_sparse', dict(arena_scale=0), 'arena_scale=0'),
    ('bbs_sparse', dict(arena_scale=-1.0), 'arena_scale=-1.0'),
    ('bbs_sparse', dict(arena_scale=True), 'arena_scale=True'),
    ('bbs_shaped', {}, 'bbs_dense'),
    ('bbs_sparse', dict(side=3), "'side' for suite bbs"),
])
def test_bad_settings_raise_one_line_value_errors(name, settings, match):
    with pytest.raises(ValueError, match=match) as error:
        envs.make(name, parallel=False, **settings)
    assert '\n' not in str(error.value)


def test_gymnasium_check_env_passes():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        env = gymnasium.make('vsg/Env-v0', task='bbs_sparse', render_mode='rgb_array', time_limit=40,
                             action_repeat=4, max_objects=2, max_distractors=1)
        check_env(env.unwrapped)
        image, info = env.reset(seed=3)
    assert [str(w.message) for w in caught] == []
    same = envs.make('bbs_sparse', seed=3, time_limit=40, action_repeat=4, parallel=False, max_objects=2,
                     max_distractors=1).reset()['image']
    np.testing.assert_array_equal(image, same)
    assert env.action_space == gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    assert info == {'success': False, 'log_scored': 0}
    env.close()


def test_expert_scores_within_the_time_limit_and_beats_random_actions():
    scored = {}
    for policy in ('expert', 'random'):
        env = envs.make('bbs_sparse', seed=0, time_limit=1000, max_objects=2, **FAST)
        obs, total, act = env.reset(), 0.0, show.policy_fn(env, policy, 0)
        while not obs['is_last']:
            action = act(obs)
            assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
            obs = env.step(action)
            total += float(obs['reward'])
        scored[policy] = (total, int(obs['log_scored']), bool(obs['success']))
    assert scored['expert'] == (2.0, 2, True) and scored['random'][0] < 2


def test_wrappers_forward_unknown_attributes_to_the_env():
    env = envs.make('bbs_sparse', **FAST)
    env.reset()
    assert isinstance(env, wrappers.Observe) and env.render_arena(50).shape[0] == 50
    assert env.expert_action().shape == (2,) and env.width == 800
    with pytest.raises(AttributeError, match='no_such'):
        env.no_such_attribute
    bare = wrappers.Wrapper.__new__(wrappers.Wrapper)  # No self.env yet: no endless recursion.
    with pytest.raises(AttributeError):
        bare.anything
    assert not hasattr(env, '__deepcopy_me__')
    assert copy.copy(env).env is env.env


def test_show_writes_a_gif_of_the_arena_beside_the_view(tmp_path, capsys):
    out = tmp_path / 'bbs.gif'
    assert show.main(['--task', 'bbs_sparse', '--policy', 'expert', '--steps', '5', '--out', str(out),
                      '--max_objects', '1', '--height', '64', '--variable_goal_position', 'true']) == 0
    data = out.read_bytes()
    assert data.startswith(b'GIF89a')
    from PIL import Image
    with Image.open(out) as gif:
        assert gif.n_frames == 6 and gif.size[1] == 64 and gif.size[0] > 64 + 64
    assert '6 frames' in capsys.readouterr().out
    strip = tmp_path / 'bbs.png'
    assert show.main(['--task', 'bbs_sparse', '--steps', '5', '--out', str(strip), '--frames', '3',
                      '--max_objects', '1', '--height', '64']) == 0
    with Image.open(strip) as image:   # three 64 px rows of arena | view, 4 px apart
        assert image.format == 'PNG' and image.size == (gif.size[0], 3 * 64 + 2 * 4)


def test_show_report_and_argument_errors(tmp_path, capsys):
    assert show.main(['--task', 'bbs_dense', '--report', '2', '--max_objects', '1', '--time_limit', '80']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['episodes'] == 2 and set(result) >= {'expert', 'random'}
    for policy in ('expert', 'random'):
        assert set(result[policy]) == {'return', 'return_mean', 'return_std', 'success_rate'}
        assert 0 <= result[policy]['success_rate'] <= 1
    for argv in (['--task', 'bbs_sparse', '--out', 'x.gif', '--max_objects', '9'],
                 ['--task', 'bbs_sparse', '--out', 'x.gif', '--side', '3'],
                 ['--task', 'bbs_sparse'],
                 ['--task', 'bbs_sparse', '--bogus'],
                 ['--task', 'gym_CartPole-v1', '--policy', 'expert', '--out', 'x.gif']):
        assert show.main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith('show: error:') and error.count('\n') == 1, argv


def test_show_imports_no_tensorflow():
    code = 'import sys, vsg.show, envs.bbs; print("tensorflow" in sys.modules)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                            cwd=str(__import__('pathlib').Path(__file__).resolve().parents[1]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'


def test_state_space_keys_and_sizes_follow_the_settings():
    sizes = lambda **settings: {key: space.shape[0] for key, space in BBS('sparse', **settings).state_space.items()}
    assert sizes(max_objects=3) == {'agent_pos': 2, 'agent_vel': 2, 'shape_pos': 6, 'shape_vel': 6, 'shape_present': 3,
                                    'goal': 2}
    assert sizes(max_objects=2, max_distractors=4) == {**sizes(max_objects=2), 'distractor_pos': 8, 'distractor_vel': 8}
    assert sizes(max_distractors=4, variable_num_distractors=True)['distractor_present'] == 4
    env = envs.make('bbs_sparse', obs='state', max_objects=2, **FAST)
    assert 'image' not in env.obs_space and env.obs_space.keys() == {*sizes(max_objects=2), 'reward', 'is_first',
                                                                     'is_last', 'is_terminal', 'success', 'log_scored'}


def test_state_holds_every_body_scaled_by_the_arena_even_outside_the_view():
    env = raw(max_objects=3, max_distractors=2, variable_num_distractors=True, arena_scale=1.5, seed=2)
    env.step(random_actions(1)[0])
    state = env.state()
    size = np.array([env.width, env.length])
    np.testing.assert_allclose(state['agent_pos'], np.array(env.agent.body.position) / size, rtol=1e-6)
    np.testing.assert_allclose(state['agent_vel'], np.array(env.agent.body.velocity) / bbs.MAX_SPEED, rtol=1e-6)
    shapes = np.array([thing.body.position for thing in env.objects]) / size
    np.testing.assert_allclose(state['shape_pos'].reshape(3, 2), shapes, rtol=1e-6)
    assert state['shape_present'].tolist() == [1, 1, 1] and np.all((shapes > 0) & (shapes < 1))
    distractors = len(env.distractors)
    assert state['distractor_present'].tolist() == [1] * distractors + [0] * (2 - distractors)
    assert not state['distractor_pos'][2 * distractors:].any()
    np.testing.assert_allclose(state['goal'], [(env.width + 50) / env.width, 0.5], rtol=1e-6)
    goals = [raw(variable_goal_position=True, seed=seed).state()['goal'] for seed in (0, 1)]
    assert goals[0][0] == goals[1][0] and goals[0][1] != goals[1][1]  # Along the right wall.
    place(env.agent, 60, 60)
    place(env.objects[2], env.width - 60, env.length - 60)  # Far outside the agent's view.
    corner = [(env.width - 60) / env.width, (env.length - 60) / env.length]
    np.testing.assert_allclose(env.state()['shape_pos'][4:], corner, rtol=1e-6)


@pytest.mark.parametrize('action, direction', [([-1, 1], (1, 0)), ([-0.5, 1], (0, 1)), ([0, 1], (-1, 0)),
                                               ([0.5, 1], (0, -1))])
def test_state_agent_moves_in_the_direction_of_the_push(action, direction):
    env = envs.make('bbs_sparse', obs='state', max_objects=1, **FAST)
    first = env.reset()
    obs = env.step(np.array(action, np.float32))
    moved, velocity = obs['agent_pos'] - first['agent_pos'], obs['agent_vel']
    assert first['agent_vel'].tolist() == [0, 0]
    for vector in (moved, velocity):
        assert vector @ np.array(direction) > 0.9 * np.linalg.norm(vector) > 0


def test_state_slot_of_a_scored_shape_turns_to_zeros():
    env = raw('sparse', max_objects=3)
    second = env.objects[1]
    place(env.agent, 400, 600)
    place(second, *in_goal(env))
    before = env.state()
    assert env.step(STILL)['reward'] == 1
    after = env.state()
    assert before['shape_present'].tolist() == [1, 1, 1] and after['shape_present'].tolist() == [1, 0, 1]
    assert after['shape_pos'][2:4].tolist() == [0, 0] and after['shape_vel'][2:4].tolist() == [0, 0]
    np.testing.assert_allclose(after['shape_pos'][[0, 1, 4, 5]], before['shape_pos'][[0, 1, 4, 5]], atol=1e-3)
    fewer = BBS('sparse', seed=0, max_objects=3, variable_num_objects=True)
    counts = set()
    for _ in range(20):
        fewer.reset()
        present = fewer.state()['shape_present']
        counts.add(int(present.sum()))
        assert sorted(present, reverse=True) == present.tolist()  # Absent shapes take the last slots.
    assert counts == {1, 2, 3}
