"""Tests of the Distracting Control Suite (envs/dcs.py, envs/backgrounds.py) and scripts/dcs.sh.

MuJoCo cannot render in a process that has imported TensorFlow, which other test modules import
into this pytest process, so each check runs in a fresh process (or a spawned env worker) and
sends its results back as JSON.
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
from PIL import Image

import envs
from common import config as config_lib
from fresh_python import run_fresh

REPO = pathlib.Path(__file__).resolve().parents[1]
HARD = np.pi / 2 * 0.3


def test_rewards_and_physics_equal_dmc_under_every_distraction(tmp_path):
    # Two short episodes each (resets resample the distractions), rendering every agent step.
    results = run_fresh(tmp_path, """
        def episodes(name, **settings):
            env = envs.make(name, seed=5, size=(32, 32), action_repeat=4, time_limit=100, parallel=False, **settings)
            suite_env = env
            while isinstance(suite_env, wrappers.Wrapper):
                suite_env = suite_env.env
            physics = suite_env._env.physics
            dims = env.act_space['action'].shape[0]
            actions = np.random.default_rng(1).uniform(-1, 1, (50, dims)).astype(np.float32)
            rewards, states, images = [], [], []
            for episode in range(2):
                obs = env.reset()
                for action in actions:
                    states.append(np.concatenate([physics.data.qpos, physics.data.qvel]).tolist())
                    images.append(obs['image'])
                    if obs['is_last']:
                        break
                    obs = env.step(action)
                    rewards.append(float(obs['reward']))
            env.close()
            return rewards, states, np.array(images, np.float64)

        results = []
        cases = [('cartpole_balance', dict(distractions=[d], dynamic=dynamic, difficulty='hard'))
                 for d in ('background', 'camera', 'color') for dynamic in (False, True)]
        cases += [('cartpole_balance', dict(dynamic=True, difficulty='medium')), ('walker_walk', dict(dynamic=True))]
        reference = {}
        for task, settings in cases:
            if task not in reference:
                reference[task] = episodes('dmc_' + task)
            rewards, states, images = episodes('dcs_' + task, **settings)
            plain = reference[task]
            results.append([task, str(settings), len(rewards), rewards == plain[0], states == plain[1],
                            float(np.abs(images - plain[2]).mean())])
        report(results)
    """)
    assert len(results) == 8
    for task, settings, steps, same_rewards, same_physics, pixel_change in results:
        assert steps == 50, (task, settings)
        assert same_rewards and same_physics, (task, settings)
        assert pixel_change > 1.0, (task, settings, pixel_change)  # Mean abs difference in 0..255.


def test_state_equals_dmc_state_step_by_step_with_or_without_rendering(tmp_path):
    # Two episodes of each (the second continues the seed's stream); both renders every agent step.
    results = run_fresh(tmp_path, """
        def states(name, obs, **settings):
            env = envs.make(name, seed=4, size=(16, 16), action_repeat=2, time_limit=60, obs=obs, parallel=False,
                            **settings)
            dims = env.act_space['action'].shape[0]
            actions = np.random.default_rng(2).uniform(-1, 1, (30, dims)).astype(np.float32)
            keys, sequence = sorted(key for key, space in env.obs_space.items() if len(space.shape) == 1), []
            for episode in range(2):
                obs = env.reset()
                sequence.append({key: obs[key].tolist() for key in keys})
                for action in actions:
                    obs = env.step(action)
                    sequence.append({key: obs[key].tolist() for key in keys})
            env.close()
            return sequence

        hard = dict(difficulty='hard', dynamic=True, distractions=['all'])
        results = {}
        for task, modes in (('cartpole_balance', ('state', 'both')), ('walker_walk', ('state',))):
            plain = states('dmc_' + task, 'state')
            same = [states('dcs_' + task, obs, **hard) == plain for obs in modes]
            results[task] = [len(plain), sorted(plain[0]), *same]
        report(results)
    """)
    assert results == {'cartpole_balance': [62, ['position', 'velocity'], True, True],
                       'walker_walk': [62, ['height', 'orientations', 'velocity'], True]}


def test_static_distractions_hold_per_episode_and_dynamic_ones_move_every_step(tmp_path):
    result = run_fresh(tmp_path, """
        from envs.dcs import DCS
        result = {}
        for dynamic in (False, True):
            env = DCS('cheetah_run', seed=2, difficulty='hard', dynamic=dynamic)
            episodes = []
            for _ in range(3):
                env.reset()
                states = [env.distraction_state()]
                for _ in range(70):
                    env.step(np.zeros(6))
                    states.append(env.distraction_state())
                episodes.append({key: [s[key].tolist() for s in states] for key in ('background', 'camera', 'color')})
            result['dynamic' if dynamic else 'static'] = episodes
            result['color_original'] = states[0]['color_original'].tolist()
            env.close()
        report(result)
    """)
    for episode in result['static']:
        for key, values in episode.items():
            assert all(value == values[0] for value in values), key
    for key in ('background', 'camera', 'color'):
        assert len({json.dumps(episode[key][0]) for episode in result['static']}) == 3, key

    original = np.array(result['color_original'])
    for episode in result['dynamic']:
        frames = np.array(episode['background'])
        assert np.all(frames[:, 0] == frames[0, 0])  # One clip per episode...
        assert np.all(np.abs(np.diff(frames[:, 1])) == 1)  # ...that moves a frame every step,
        assert frames[:, 1].min() >= 0 and frames[:, 1].max() == 59  # reversing at its last frame.
        camera, color = np.array(episode['camera']), np.array(episode['color'])
        assert np.all(np.any(np.diff(camera, axis=0) != 0, axis=1))
        assert np.all(np.any(np.diff(color, axis=0) != 0, axis=(1, 2)))
        assert np.all(np.abs(camera[:, [0, 1, 3]]) <= HARD + 1e-9)
        assert np.all(camera[:, 1] >= -1e-9)  # The side camera stays above the cheetah.
        assert np.all((camera[:, 2] >= 1 - 0.15 - 1e-9) & (camera[:, 2] <= 1 + 0.45 + 1e-9))
        assert np.all(np.abs(color - original) <= 0.3 + 1e-6) and np.all((color >= 0) & (color <= 1))


def test_larger_difficulty_larger_deviations_and_more_videos(tmp_path):
    result = run_fresh(tmp_path, """
        from envs.dcs import DCS
        result = {}
        for difficulty in ('easy', 'medium', 'hard', '0.5', 1.0):
            env = DCS('walker_walk', seed=0, difficulty=difficulty)
            color, camera, videos = [], [], set()
            for _ in range(40):
                env.reset()
                state = env.distraction_state()
                color.append(np.abs(state['color'] - state['color_original']).mean())
                camera.append(np.abs(state['camera'] - [0, 0, 1, 0]).mean())
                videos.add(int(state['background'][0]))
            result[str(difficulty)] = [env.scale, np.mean(color), np.mean(camera), len(videos)]
            env.close()
        report(result)
    """)
    scales, color, camera, videos = zip(*result.values())
    assert scales == (0.1, 0.2, 0.3, 0.5, 1.0)
    assert all(a < b for a, b in zip(color, color[1:])) and all(a < b for a, b in zip(camera, camera[1:]))
    assert videos[0] <= 4 and videos[1] <= 8 and videos[2] > 8


def test_same_seed_same_frames_other_seed_differs():
    # Spawned workers, as in training: the settings travel to the worker process.
    settings = dict(size=(32, 32), time_limit=40, difficulty='hard', dynamic=True)
    workers = [envs.make('dcs_cartpole_balance', seed=seed, **settings) for seed in (0, 0, 1)]
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 1)).astype(np.float32)
    runs = [[env.reset()['image']] + [env.step(action)['image'] for action in actions] for env in workers]
    for env in workers:
        env.close()
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))
    assert all(not np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))
    assert not np.array_equal(runs[0][0], runs[0][1])


def write_videos(root, colours, frames=3):
    """One folder of tiny solid-colour JPEGs per colour, brighter at each frame."""
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for t in range(frames):
            rgb = tuple(int(c * (0.5 + 0.25 * t)) for c in colour)
            Image.new('RGB', (16, 12), rgb).save(root / name / f'{t:05d}.jpg')


def test_bad_settings_are_one_line_errors_and_jpeg_folders_work(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'no_jpegs' / 'clip').mkdir(parents=True)
    (tmp_path / 'no_jpegs' / 'clip' / 'notes.txt').write_text('not a frame')
    write_videos(tmp_path / 'DAVIS' / 'JPEGImages' / '480p', {'red': (255, 0, 0), 'green': (0, 255, 0)})
    result = run_fresh(tmp_path, f"""
        root = {str(tmp_path)!r}
        bad = [dict(difficulty='extreme'), dict(difficulty=0), dict(difficulty=1.5), dict(difficulty=True),
               dict(dynamic='yes'), dict(distractions=['background', 'noise']), dict(distractions=3),
               dict(background_dir=root + '/missing'), dict(background_dir=root + '/empty'),
               dict(background_dir=root + '/no_jpegs'), dict(background_split='test'),
               dict(background_dir=root + '/DAVIS', background_split='val'), dict(camera=7), dict(camera='side')]
        errors = []
        for settings in bad:
            try:
                envs.make('dcs_cartpole_balance', parallel=False, **settings)
                errors.append('no error')
            except ValueError as error:
                errors.append(str(error))
        for name in ('dcs_cheetah_rnu', 'dcs_quadruped_walk'):
            try:
                envs.make(name, parallel=False)
            except ValueError as error:
                errors.append(str(error))
        videos = {{}}
        for directory in (root + '/DAVIS', root + '/DAVIS/JPEGImages/480p'):
            for dynamic in (False, True):
                env = envs.make('dcs_reacher_easy', seed=1, size=(32, 32), distractions=['background'],
                                dynamic=dynamic, background_dir=directory, parallel=False)
                images = [env.reset()['image']] + [env.step(np.zeros(2, np.float32))['image'] for _ in range(3)]
                images = np.array(images, np.float64)
                red = (images[..., 0] > 100) & (images[..., 1] < 60) & (images[..., 2] < 60)
                green = (images[..., 1] > 100) & (images[..., 0] < 60) & (images[..., 2] < 60)
                solid = red | green
                level = [float(np.median(image.max(-1)[mask])) if mask.any() else 0.0
                         for image, mask in zip(images, solid)]  # The clip's frame brightness.
                videos[f'{{directory}} {{dynamic}}'] = [float(solid.mean()), level]
                env.close()
        report([errors, videos])
    """)
    errors, videos = result
    fragments = ['easy, medium, hard or a number in (0, 1]'] * 4 + [
        'dynamic must be true or false', "Unknown DCS distraction 'noise'; allowed: background, camera, color or all",
        'distractions must be a list of some of background, camera, color (or all); got 3',
        f"'{tmp_path}/missing' is not a directory", f"'{tmp_path}/empty' holds no videos",
        f"'{tmp_path}/no_jpegs' holds no videos", "background_split must be all, train or val; got 'test'",
        f"needs DAVIS's list val.txt, found at none of {tmp_path}/DAVIS/ImageSets/2017/val.txt",
        'camera 7 does not exist', 'camera must be a camera id',
        "'dcs_cheetah_rnu'; did you mean dcs_cheetah_run?", "Unknown DCS task 'dcs_quadruped_walk'"]
    assert len(errors) == len(fragments)
    for error, fragment in zip(errors, fragments):
        assert fragment in error and '\n' not in error, (fragment, error)
    for key, (solid_fraction, brightness) in videos.items():
        assert solid_fraction > 0.3, key  # The reacher's floor is clear: the clip fills the view.
        steps_changed = sum(a != b for a, b in zip(brightness, brightness[1:]))
        assert steps_changed == (3 if key.endswith('True') else 0), (key, brightness)


def test_gymnasium_check_env_and_settings_signature(tmp_path):
    result = run_fresh(tmp_path, """
        import inspect, warnings
        import gymnasium
        from gymnasium.utils.env_checker import check_env
        from envs.dcs import DCS
        parameters = list(inspect.signature(DCS).parameters) == ['task', 'seed', *envs.SUITES['dcs'][1]]
        for given, parsed in [('color, camera', ('camera', 'color')), (['all'], ('background', 'camera', 'color'))]:
            env = DCS('cartpole_balance', distractions=given)  # As a command line or the config gives it.
            parameters = parameters and env.distractions == parsed
            env.close()
        kwargs = dict(time_limit=50, size=(32, 32), dynamic=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            env = gymnasium.make('vsg/Env-v0', task='dcs_cartpole_balance', render_mode='rgb_array', **kwargs)
            check_env(env.unwrapped)
            image, _ = env.reset(seed=3)
            same = envs.make('dcs_cartpole_balance', seed=3, parallel=False, **kwargs).reset()['image']
            report([parameters, str(env.observation_space), str(env.action_space), np.array_equal(image, same),
                    np.array_equal(env.render(), image), [str(w.message) for w in caught]])
            env.close()
    """)
    assert result == [True, 'Box(0, 255, (32, 32, 3), uint8)', 'Box(-1.0, 1.0, (1,), float32)', True, True, []]


def test_frame_strip_entry_point_writes_a_png(tmp_path):
    out = tmp_path / 'strip.png'
    run_fresh(tmp_path, f"""
        from envs import dcs
        dcs._main(['--task', 'cartpole_balance', '--out', {str(out)!r}, '--size', '16', '--frames', '2',
                   '--every', '2'])
        report(None)
    """)
    image = np.asarray(Image.open(out))
    assert image.shape == (7 * 16, 100 + 2 * 16, 3)  # dmc, then 3 difficulties x static/dynamic.


def test_config_block_holds_every_setting():
    config = config_lib.load(['--env.dcs.difficulty', 'hard', '--env.dcs.distractions', 'camera,color',
                              '--env.dcs.background_split', 'val'])
    assert set(config.env.dcs) == {*envs.SUITES['dcs'][1], 'obs', 'segmentation'}  # envs.make's own arguments.
    assert config.env.dcs.difficulty == 'hard' and tuple(config.env.dcs.distractions) == ('camera', 'color')
    assert config.env.dcs.background_split == 'val'
    assert dict(config_lib.load([]).env.dcs) == {
        'obs': 'pixels', 'segmentation': False, 'difficulty': 'easy', 'dynamic': False, 'distractions': ('all',), 'background_dir': '',
        'background_split': 'all', 'camera': -1}


def dcs_sh(*args):
    env = {**os.environ, 'PYTHON': 'echo', 'LOGDIR': '/runs'}  # echo prints the command it would run
    return subprocess.run(['bash', 'scripts/dcs.sh', *args], cwd=REPO, env=env, capture_output=True, text=True)


@pytest.mark.parametrize('model, core', [('DreamerV2', 'rssm'), ('VSG', 'vsg'), ('SVSG', 'svsg')])
def test_dcs_sh_maps_arguments_onto_flags(model, core):
    result = dcs_sh('cheetah_run', model, 'base', 'medium', '7', '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    assert argv[:2] == ['-m', 'vsg.train']
    config = config_lib.load(argv[2:])
    assert config.core == core and config.task == 'dcs_cheetah_run' and config.seed == 7
    assert config.env.dcs.difficulty == 'medium' and config.steps == 250000 and config.batch_size == 4
    assert config.kl.free == 1.0  # The dmc named config.
    assert config.logdir == f'/runs/dcs_cheetah_run/medium/{model}_base/seed_7'
    if core != 'rssm':
        assert config.gate.prior == 0.4


@pytest.mark.parametrize('args, fragment', [
    (('cheetah_run', 'VSG', 'base', 'extreme', '1'), "DIFFICULTY 'extreme' must be easy, medium or hard"),
    (('cheetah_run', 'VSG2', 'base', 'easy', '1'), "MODEL 'VSG2' is not supported"),
    (('cheetah_run', 'VSG', 'base', 'easy'), 'usage: bash scripts/dcs.sh'),
])
def test_dcs_sh_rejects_bad_arguments_in_one_line(args, fragment):
    result = dcs_sh(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and not result.stdout
    assert len(lines) == 1 and fragment in lines[0]
