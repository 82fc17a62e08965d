"""Segmentation: the foreground ARI (common/segmentation.py) and the envs' `segmentation` key
(envs.make(..., segmentation=True)) of DMC, DCS, Fetch and BringBackShapes, its refusal elsewhere, and
vsg.collect storing it.

MuJoCo cannot render in a process that has imported TensorFlow, which other test modules import
into this pytest process, so DMC, DCS and Fetch render in fresh processes (run_fresh); BBS draws with
PIL and runs here.
"""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from common.segmentation import fg_ari
from envs import bbs, wrappers
from fresh_python import run_fresh

ROOT = Path(__file__).resolve().parent.parent


# --- fg_ari

def test_a_perfect_segmentation_scores_one_whatever_its_ids():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, (4, 16, 16))
    renamed = np.array([9, 40, -3, 7, 1000])[true]  # A permutation of the ids, the background included.
    np.testing.assert_array_equal(fg_ari(true, true), np.ones(4))
    np.testing.assert_array_equal(fg_ari(true, renamed), np.ones(4))
    assert fg_ari(true, renamed).dtype == np.float64


def test_a_constant_prediction_against_two_or_more_objects_scores_zero():
    true = np.array([[0, 1, 1, 2, 2, 2, 3, 0]])
    # Every foreground pair is together in the prediction: tp = C(2,2) + C(3,2) = 4 pairs together in
    # the truth too, fp = C(6,2) - 4 = 11, fn = tn = 0, so ARI = 2 (4 * 0 - 0 * 11) / (...) = 0.
    assert fg_ari(true, np.full_like(true, 5)) == [0.0]


def test_a_hand_computed_case_of_six_foreground_pixels():
    true = np.array([[[0, 1, 1, 1], [2, 2, 2, 0]]])  # 6 foreground pixels: object 1 thrice, object 2 thrice.
    pred = np.array([[[3, 5, 5, 7], [7, 7, 7, 5]]])  # Background pixels predicted anything.
    # Foreground (true, pred): (1,5) (1,5) (1,7) (2,7) (2,7) (2,7). Of the C(6,2) = 15 pairs:
    together_true = 3 + 3  # C(3,2) per object.
    together_pred = 1 + 6  # 5: C(2,2); 7: C(4,2).
    tp = 1 + 3  # (1,5): C(2,2); (1,7): C(1,2) = 0; (2,7): C(3,2).
    fn, fp = together_true - tp, together_pred - tp  # 2, 3
    tn = 15 - tp - fn - fp  # 6
    ari = 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))  # 36 / 111
    # The same by the contingency table's (index - expected) / (max - expected).
    expected = together_true * together_pred / 15
    assert ari == pytest.approx((tp - expected) / ((together_true + together_pred) / 2 - expected))
    assert fg_ari(true, pred)[0] == pytest.approx(36 / 111) == pytest.approx(ari)


def test_background_pixels_are_ignored():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 4, (3, 12, 12))
    pred = rng.integers(0, 3, (3, 12, 12))
    changed = np.where(true == 0, rng.integers(0, 50, true.shape), pred)
    np.testing.assert_array_equal(fg_ari(true, pred), fg_ari(true, changed))
    # Another background id: the pixels of 0 count, those of 3 do not.
    assert not np.array_equal(fg_ari(true, pred, background=3), fg_ari(true, pred))
    np.testing.assert_array_equal(fg_ari(true, pred, background=3),
                                  fg_ari(true, np.where(true == 3, 0, pred), background=3))


def test_edge_cases_no_foreground_is_nan_one_segment_each_is_one():
    true = np.zeros((3, 4, 4), int)
    true[1, 1:3, 1:3] = 2  # One object, predicted as one segment (partly the background's id).
    true[2, 0, 0] = 1  # A single foreground pixel.
    pred = np.zeros((3, 4, 4), int)
    result = fg_ari(true, pred)
    assert np.isnan(result[0]) and result[1] == 1.0 and result[2] == 1.0


def test_videos_are_scored_as_wholes_so_ids_must_hold_over_time():
    true = np.zeros((1, 2, 4, 4), int)
    true[0, :, :2] = 1
    true[0, :, 2:] = 2
    swapped = true.copy()
    swapped[0, 1] = 3 - true[0, 1]  # The second frame swaps the two objects' ids.
    assert fg_ari(true[0], swapped[0]).tolist() == [1.0, 1.0]  # Frame by frame: perfect.
    assert fg_ari(true, swapped)[0] < 0.5  # As one video: objects change ids.


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ValueError, match='integer ids'):
        fg_ari(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), int))
    with pytest.raises(ValueError, match=r'one shape \[N, \.\.\.\]'):
        fg_ari(np.zeros((1, 2, 2), int), np.zeros((1, 2, 3), int))


def test_agrees_with_sklearn():
    metrics = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(2)
    true, pred = rng.integers(0, 5, (20, 8, 8)), rng.integers(0, 4, (20, 8, 8))
    pred[::2] = np.where(rng.random(pred[::2].shape) < 0.8, true[::2], pred[::2])  # Half of them good.
    for item in range(20):
        foreground = true[item] != 0
        reference = metrics.adjusted_rand_score(true[item][foreground], pred[item][foreground])
        assert fg_ari(true, pred)[item] == pytest.approx(reference)


# --- Envs: settings

@pytest.mark.parametrize('name', ['gym_CartPole-v1'])
def test_a_suite_without_segmentation_refuses_it_in_one_line(name):
    with pytest.raises(ValueError, match='the suites that do: dmc, dcs, fetch, bbs, grid') as error:
        envs.make(name, segmentation=True, parallel=False)
    assert '\n' not in str(error.value) and name.split('_')[0] in str(error.value)
    env = envs.make(name, segmentation=False, parallel=False, action_repeat=1)  # Off is fine anywhere.
    assert 'segmentation' not in env.obs_space
    env.close()


def test_segmentation_must_be_a_bool_and_the_wrapper_checks_the_suite_too():
    with pytest.raises(ValueError, match="segmentation='yes' must be true or false"):
        envs.make('bbs_sparse', segmentation='yes', parallel=False)
    from envs import grid

    class Unlabelled(grid.Grid):  # a suite without render_segmentation
        def __getattribute__(self, name):
            if name == 'render_segmentation':
                raise AttributeError(name)
            return super().__getattribute__(name)
    with pytest.raises(ValueError, match='renders no segmentation'):
        wrappers.wrap(Unlabelled('reach'), (16, 16), 1, 10, segmentation=True)
    assert envs.SEGMENTATION == ('dmc', 'dcs', 'fetch', 'bbs', 'grid')


# --- BringBackShapes (in this process)

BBS = dict(max_objects=3, max_distractors=4, action_repeat=4, time_limit=4000, parallel=False)


def bbs_episode(seed=0, steps=40, **settings):
    env = envs.make('bbs_sparse', seed=seed, segmentation=True, **{**BBS, **settings})
    obs = [env.reset()]
    obs += [env.step(action) for action in np.random.default_rng(seed).uniform(-1, 1, (steps, 2)).astype(np.float32)]
    return env, obs


def test_bbs_segmentation_space_ids_and_alignment_with_the_image():
    env, episode = bbs_episode()
    assert env.obs_space['segmentation'] == gymnasium.spaces.Box(0, 255, (64, 64), np.uint8)
    allowed = {0, bbs.AGENT_ID, *bbs.SHAPE_IDS[:3], *bbs.DISTRACTOR_IDS[:4]}
    seen = set()
    for obs in episode:
        labels = obs['segmentation']
        assert labels.dtype == np.uint8 and labels.shape == (64, 64) and env.obs_space['segmentation'].contains(labels)
        ids = set(np.unique(labels).tolist())
        assert ids <= allowed
        seen |= ids
        assert labels[31:33, 31:33].tolist() == [[bbs.AGENT_ID] * 2] * 2  # The view is centred on the agent.
        # Each id is drawn where its body is: the image shows that body's colour there (within the
        # antialiased edges), frame after frame, so a shape keeps its id.
        for thing in [env.agent, *env._shapes, *env.distractors]:
            where = labels == thing.label
            if where.sum() >= 12:
                colour = np.median(obs['image'][where].astype(float), 0)
                assert np.abs(colour - thing.colour).max() < 40, (thing.kind, colour, thing.colour)
    assert seen - {0, bbs.AGENT_ID}  # Some shape or distractor came into view.
    assert [thing.label for thing in env._shapes] == list(bbs.SHAPE_IDS[:3])
    assert [thing.label for thing in env.distractors] == list(bbs.DISTRACTOR_IDS[:4])


def test_bbs_same_seed_same_label_maps_and_off_by_default():
    _, first = bbs_episode(seed=3, steps=20)
    _, second = bbs_episode(seed=3, steps=20)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a['segmentation'], b['segmentation'])
    plain = envs.make('bbs_sparse', seed=3, **BBS)
    obs = plain.reset()
    assert 'segmentation' not in plain.obs_space and 'segmentation' not in obs
    np.testing.assert_array_equal(obs['image'], first[0]['image'])  # Nothing else changes.
    state = envs.make('bbs_sparse', seed=3, obs='state', segmentation=True, **BBS)  # Any obs mode.
    obs = state.reset()
    assert 'image' not in obs and 'agent_pos' in obs
    np.testing.assert_array_equal(obs['segmentation'], first[0]['segmentation'])


def test_bbs_gymnasium_check_env_with_segmentation():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        env = gymnasium.make('vsg/Env-v0', task='bbs_sparse', render_mode='rgb_array', time_limit=40, action_repeat=4,
                             max_objects=2, max_distractors=1, segmentation=True)
        check_env(env.unwrapped)
        observation, info = env.reset(seed=3)
    assert [str(w.message) for w in caught] == []
    assert set(env.observation_space) == {'image', 'segmentation'} and set(observation) == {'image', 'segmentation'}
    assert info == {'success': False, 'log_scored': 0}
    env.close()


# --- MuJoCo suites (fresh processes)

def test_dmc_and_dcs_cartpole_segmentation(tmp_path):
    result = run_fresh(tmp_path, """
        import importlib
        from envs.dmc import DMC
        KW = dict(size=(64, 64), action_repeat=2, time_limit=100, parallel=False)
        actions = np.random.default_rng(0).uniform(-1, 1, (10, 1)).astype(np.float32)

        def episode(name, **settings):
            env = envs.make(name, seed=1, segmentation=True, **KW, **settings)
            obs = [env.reset()] + [env.step(action) for action in actions]
            env.close()
            return env.obs_space, obs

        out = {}
        space, dmc = episode('dmc_cartpole_balance')
        raw = DMC('cartpole_balance')
        out['bodies'] = [raw._env.physics.model.id2name(i, 'body') for i in range(raw._env.physics.model.nbody)]
        out['default_keys'] = sorted(wrappers.wrap(raw, (64, 64), 2, 100).reset())  # Off by default.
        raw.close()
        out['space'] = str(space['segmentation'])
        out['dtype'] = sorted({f"{obs['segmentation'].dtype} {obs['segmentation'].shape}" for obs in dmc})
        out['ids'] = sorted(set(np.unique([obs['segmentation'] for obs in dmc]).tolist()))
        # The pole (id 2) stands above the cart (id 1) in every frame: rows grow downwards.
        rows = [[float(np.nonzero(obs['segmentation'] == i)[0].mean()) for i in (1, 2)] for obs in dmc]
        out['pole_above_cart'] = all(pole < cart for cart, pole in rows)
        # DCS, dynamic: the background and colours never show, so with those two the labels are DMC's
        # under the same seed; the camera distraction moves them with the view.
        _, still = episode('dcs_cartpole_balance', dynamic=True, difficulty='hard', distractions=['background', 'color'])
        out['dcs_equals_dmc'] = all(np.array_equal(a['segmentation'], b['segmentation']) for a, b in zip(dmc, still))
        out['dcs_image_differs'] = not np.array_equal(dmc[5]['image'], still[5]['image'])
        moved = [episode('dcs_cartpole_balance', dynamic=True, difficulty='hard')[1] for _ in range(2)]
        out['dcs_camera_ids'] = sorted(set(np.unique([obs['segmentation'] for obs in moved[0]]).tolist()))
        out['dcs_camera_moves_labels'] = not np.array_equal(dmc[5]['segmentation'], moved[0][5]['segmentation'])
        out['dcs_same_seed'] = all(np.array_equal(a['segmentation'], b['segmentation']) for a, b in zip(*moved))
        out['methods'] = {suite: hasattr(getattr(importlib.import_module(path.split(':')[0]), path.split(':')[1]),
                                         'render_segmentation') for suite, (path, _) in envs.SUITES.items()}
        report(out)
    """)
    assert result['bodies'] == ['world', 'cart', 'pole_1']
    assert result['space'] == 'Box(0, 255, (64, 64), uint8)' and result['dtype'] == ['uint8 (64, 64)']
    assert result['ids'] == [0, 1, 2] and result['pole_above_cart']
    assert result['dcs_equals_dmc'] and result['dcs_image_differs']
    assert result['dcs_camera_ids'] == [0, 1, 2] and result['dcs_camera_moves_labels'] and result['dcs_same_seed']
    assert result['default_keys'] == ['image', 'is_first', 'is_last', 'is_terminal', 'reward']
    assert result['methods'] == {suite: suite in envs.SEGMENTATION for suite in envs.SUITES}


def test_fetch_push_segmentation_with_distractors_and_check_env(tmp_path):
    result = run_fresh(tmp_path, """
        import warnings
        import gymnasium
        from gymnasium.utils.env_checker import check_env
        from envs import fetch
        def episode(seed=2, steps=25, **kwargs):
            env = envs.make('fetch_PushRed_2Distractors_Dense', seed=seed, parallel=False, size=(64, 64), action_repeat=2,
                            time_limit=200, **kwargs)
            obs = [env.reset()]
            for _ in range(steps):
                obs.append(env.step(env.expert_action()))
            env.close()
            return env.obs_space, obs

        space, labelled = episode(segmentation=True)
        out = {'space': str(space['segmentation']), 'keys': sorted(labelled[0]),
               'dtype': sorted({f"{obs['segmentation'].dtype} {obs['segmentation'].shape}" for obs in labelled}),
               'ids': sorted(set(np.unique([obs['segmentation'] for obs in labelled]).tolist())),
               'gripper_every_frame': all((obs['segmentation'] == fetch.GRIPPER_ID).any() for obs in labelled)}
        # The target block is red in every frame (lit, so not pure red): its id stays with it.
        target = [obs['image'][obs['segmentation'] == fetch.OBJECT_IDS[0]].astype(float).mean(0).tolist() for obs in labelled]
        out['target_red'] = all(r > 100 and r > g + 60 and r > b + 60 for r, g, b in target)
        out['same_seed'] = all(np.array_equal(a['segmentation'], b['segmentation'])
                               for a, b in zip(labelled, episode(segmentation=True)[1]))
        out['default_keys'] = sorted(episode(steps=0)[1][0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            env = gymnasium.make('vsg/Env-v0', task='fetch_ReachRed_2Distractors_Dense', render_mode='rgb_array',
                                 time_limit=20, size=(32, 32), segmentation=True)
            check_env(env.unwrapped)
            observation, _ = env.reset(seed=1)
            out['gymnasium'] = [str(env.observation_space), sorted(observation), [str(w.message) for w in caught]]
            env.close()
        report(out)
    """)
    assert result['space'] == 'Box(0, 255, (64, 64), uint8)' and result['dtype'] == ['uint8 (64, 64)']
    assert 'segmentation' in result['keys'] and 'segmentation' not in result['default_keys']
    # Gripper, the target and two distractors; the goal marker; never the parked objects 3 and 4.
    assert result['ids'] == [0, 1, 2, 3, 4, 7]
    assert result['gripper_every_frame'] and result['target_red'] and result['same_seed']
    space, keys, warned = result['gymnasium']
    assert space == "Dict('image': Box(0, 255, (32, 32, 3), uint8), 'segmentation': Box(0, 255, (32, 32), uint8))"
    assert keys == ['image', 'segmentation'] and warned == []


# --- Storage

def test_a_run_resumes_only_with_its_own_segmentation_setting(tmp_path):
    from common import config as config_lib
    from vsg import build
    config = config_lib.load(['--configs', 'debug', '--task', 'dmc_cartpole_balance'])
    labelled = config.update({'env.dmc.segmentation': True})
    labelled.save(tmp_path / 'config.yaml')
    assert build.check_logdir(labelled, tmp_path) is None
    assert ("holds a run with env.dmc.segmentation=True, this one asks for env.dmc.segmentation=False"
            in build.check_logdir(config, tmp_path))
    # A run saved before the setting existed had none: it resumes with the default, off.
    text = (tmp_path / 'config.yaml').read_text().replace('dmc: {camera: -1, obs: pixels, segmentation: true}',
                                                          'dmc: {camera: -1, obs: pixels}')
    assert 'segmentation: true' not in text
    (tmp_path / 'config.yaml').write_text(text)
    assert build.check_logdir(config, tmp_path) is None


def test_collect_stores_the_segmentation_in_the_episode_files(tmp_path):
    out = tmp_path / 'data'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'TF_CPP_MIN_LOG_LEVEL': '3'}
    result = subprocess.run([sys.executable, '-m', 'vsg.collect', '--task', 'dmc_cartpole_balance', '--episodes', '1',
                             '--outdir', str(out), '--env.time_limit', '16', '--env.action_repeat', '2',
                             '--env.dmc.segmentation', 'true'],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [path] = out.glob('*.npz')
    with np.load(path, allow_pickle=False) as data:
        labels, images = data['segmentation'], data['image']
    assert labels.shape == (9, 64, 64) and labels.dtype == np.uint8 and images.shape == (9, 64, 64, 3)
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    assert json.loads((out / 'dataset.json').read_text())['env']['env.dmc.segmentation'] is True
