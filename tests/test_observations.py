"""Observations by key: which keys the encoder and decoder take, the loss per decoded key and its
scale, symlog inputs, old pixel checkpoints' keys, and the one-line refusals of bad settings."""
import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint, nets
from common import config as config_lib
from vsg import build
from vsg.agent import Agent, example_batch

ROOT = Path(__file__).resolve().parent.parent
IMAGE = gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)
FLAG = gymnasium.spaces.Box(0, 1, (), bool)
ACTION = {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}


def vector(size):
    return gymnasium.spaces.Box(-np.inf, np.inf, (size,), np.float32)


def space(**keys):
    """An env's obs space: `keys` plus what every obs carries (reward, the flags) and a suite's extras."""
    return {**keys, 'reward': gymnasium.spaces.Box(-np.inf, np.inf, (), np.float32), 'is_first': FLAG,
            'is_last': FLAG, 'is_terminal': FLAG, 'success': FLAG, 'log_scored': vector(1)}


def agent(obs_space, *flags):
    return Agent(obs_space, ACTION, config_lib.load(['--configs', 'debug', *flags]))


def test_keys_are_chosen_by_rank_and_pattern_never_flags_or_logs():
    obs_space = space(image=IMAGE, position=vector(3), velocity=vector(2))
    assert nets.select_keys(obs_space, '.*', '.*') == (['image'], ['position', 'velocity'])
    assert nets.select_keys(obs_space, '$^', 'pos.*') == ([], ['position'])
    assert nets.select_keys(obs_space, 'image', 'velocity|position') == (['image'], ['position', 'velocity'])
    assert nets.select_keys(obs_space, 'ima', '$^') == ([], [])  # the whole name must match


def test_state_agent_has_one_loss_per_key_and_weighs_each_by_its_scale():
    obs_space = space(position=vector(3), velocity=vector(2))
    config_flags = ['--loss_scales.position', '3', '--loss_scales.kl', '0.5']
    state_agent = agent(obs_space, *config_flags)
    assert state_agent.wm.encoder.keys == ('position', 'velocity') and state_agent.wm.decoder.keys == ('position', 'velocity')
    assert state_agent.video_prediction is None  # nothing to draw
    data = {key: tf.constant(value) for key, value in
            example_batch(state_agent, obs_space, [2, 8], np.random.default_rng(0)).items()}
    total, post, metrics = state_agent.wm.loss(data)
    terms = {key: float(metrics[f'{key}_loss']) for key in ('position', 'velocity', 'reward', 'kl', 'cont')}
    assert 'image_loss' not in metrics
    expected = 3 * terms['position'] + terms['velocity'] + terms['reward'] + 0.5 * terms['kl'] + terms['cont']
    assert float(total) == pytest.approx(expected, rel=1e-5)
    # Each vector loss is the unit Gaussian's negative log-likelihood without its constant: half the
    # squared error summed over the key's entries, averaged over batch and time.
    feat = state_agent.wm.core.get_feat(post)
    mean = state_agent.wm.decoder(feat)['velocity'].numpy()
    by_hand = 0.5 * np.sum((mean - data['velocity'].numpy()) ** 2, -1).mean()
    assert terms['velocity'] == pytest.approx(by_hand, rel=1e-5)
    metrics = state_agent.train(data)
    assert np.isfinite(float(metrics['model_opt_loss']))



def test_a_half_resolution_decoder_predicts_2x2_blocks_and_its_loss_is_the_full_images():
    obs_space = space(image=IMAGE)
    half, full = agent(obs_space, '--decoder.resolution', '32'), agent(obs_space)
    data = {key: tf.constant(value) for key, value in example_batch(half, obs_space, [2, 4], np.random.default_rng(0)).items()}
    _, post, metrics = half.wm.loss(data)
    mean = half.wm.decoder(half.wm.core.get_feat(post))['image'].numpy()
    assert mean.shape == (2, 4, 64, 64, 3)
    blocks = mean.reshape(2, 4, 32, 2, 32, 2, 3)
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :, :, :1, :, :1], blocks.shape))  # one value per block
    # The loss is the 64x64 image's: half the squared error over every pixel, averaged over batch and time.
    target = data['image'].numpy() / 255 - 0.5
    assert float(metrics['image_loss']) == pytest.approx(0.5 * ((mean - target) ** 2).sum((2, 3, 4)).mean(), rel=1e-5)
    size = lambda model: sum(int(np.prod(v.shape)) for v in model.wm.decoder.trainable_variables)
    assert size(half) < size(full)
    assert np.isfinite(float(half.train(data)['model_opt_loss']))
    with pytest.raises(config_lib.ConfigError, match="decoder.resolution=48 is not allowed; choose one of 64, 32"):
        config_lib.load(['--configs', 'debug', '--decoder.resolution', '48'])

def test_32x32_images_take_the_last_three_convolutions_and_a_32x32_decoder():
    small_image = gymnasium.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    obs_space = space(image=small_image)
    small, full = agent(obs_space, '--decoder.resolution', '32'), agent(space(image=IMAGE))
    data = {key: tf.constant(value) for key, value in example_batch(small, obs_space, [2, 4], np.random.default_rng(0)).items()}
    embed = small.wm.encoder(data)
    assert embed.shape == full.wm.encoder({'image': tf.zeros([2, 4, 64, 64, 3], tf.uint8)}).shape  # the same 2x2x(8 depth) map
    channels = lambda model: [v.shape[-1] for v in model.wm.encoder.trainable_variables if len(v.shape) == 4]
    assert channels(small) == channels(full)[1:]  # the widths of the 64x64 stack's last three layers
    _, post, metrics = small.wm.loss(data)
    mean = small.wm.decoder(small.wm.core.get_feat(post))['image'].numpy()
    assert mean.shape == (2, 4, 32, 32, 3)
    target = data['image'].numpy() / 255 - 0.5
    assert float(metrics['image_loss']) == pytest.approx(0.5 * ((mean - target) ** 2).sum((2, 3, 4)).mean(), rel=1e-5)
    assert np.isfinite(float(small.train(data)['model_opt_loss']))


def test_mixed_observations_concatenate_the_cnn_and_mlp_embeddings():
    obs_space = space(image=IMAGE, position=vector(3))
    mixed = agent(obs_space)
    config = config_lib.load(['--configs', 'debug'])
    batch = {key: tf.constant(value) for key, value in example_batch(mixed, obs_space, [2, 3]).items()}
    embed = mixed.wm.encoder(batch)
    assert embed.shape == (2, 3, 32 * config.encoder.depth + config.encoder.mlp_units)
    predicted = mixed.wm.decoder(mixed.wm.core.get_feat(mixed.wm.core.observe(embed, batch['action'], batch['is_first'])[0]))
    assert predicted['image'].shape == (2, 3, 64, 64, 3) and predicted['position'].shape == (2, 3, 3)
    assert mixed.video_prediction is not None


def test_a_segmentation_in_the_obs_is_neither_encoded_nor_decoded():
    """Envs with segmentation=True add a uint8 [H, W] label map: rank 2, so no encoder input or decoder target."""
    labels = gymnasium.spaces.Box(0, 255, (64, 64), np.uint8)
    obs_space = space(image=IMAGE, segmentation=labels, position=vector(3))
    assert nets.select_keys(obs_space, '.*', '.*') == (['image'], ['position'])
    assert nets.select_keys(obs_space, 'segmentation', 'segmentation') == ([], [])
    labelled = agent(obs_space)
    assert labelled.wm.encoder.keys == ('image', 'position') and labelled.wm.decoder.keys == ('image', 'position')
    data = example_batch(labelled, obs_space, [2, 3], np.random.default_rng(0))
    data['segmentation'] = np.random.default_rng(1).integers(0, 5, (2, 3, 64, 64)).astype(np.uint8)  # As replay holds it.
    _, _, metrics = labelled.wm.loss({key: tf.constant(value) for key, value in data.items()})
    assert 'segmentation_loss' not in metrics and {'image_loss', 'position_loss'} <= set(metrics)


def test_symlog_inputs_squash_vectors_and_the_decoder_predicts_in_that_scale():
    x = tf.constant([-100.0, -1.0, 0.0, 0.5, 100.0])
    np.testing.assert_allclose(nets.symlog(x).numpy(), np.sign(x) * np.log1p(np.abs(x)), rtol=1e-6)
    squashed = agent(space(position=vector(3)), '--encoder.symlog_inputs', 'True')
    obs = {'position': tf.constant([[[1000.0, -1000.0, 0.0]]])}
    np.testing.assert_allclose(squashed.wm.decoder.target(obs, 'position').numpy()[0, 0],
                               np.sign([1000, -1000, 0]) * np.log1p([1000, 1000, 0]), rtol=1e-6)
    # The encoder sees symlog(x): raw inputs 1000 and 1001 give nearly the same embedding.
    near = squashed.wm.encoder({'position': tf.constant([[[1000.0, 0, 0]], [[1001.0, 0, 0]]])}).numpy()
    plain = agent(space(position=vector(3))).wm.encoder({'position': tf.constant([[[1000.0, 0, 0]], [[1001.0, 0, 0]]])}).numpy()
    assert np.abs(near[0] - near[1]).max() < 1e-2 < np.abs(plain[0] - plain[1]).max()


def test_pixel_agents_keep_the_checkpoint_keys_of_older_runs():
    """Logdirs written before observations by key (every one of them pixels only) must still load."""
    saved = json.loads((ROOT / 'tests' / 'data' / 'checkpoint_keys_pixels.json').read_text())
    flags = {'rssm_gaussian': ['--rssm.discrete', '0']}
    for name, keys in saved.items():
        pixels = agent({'image': IMAGE}, '--core', name.split('_')[0], '--svsg.stoch', '6', '--svsg.hidden', '5',
                       *flags.get(name, []))
        now = {key: list(variable.shape) for key, variable in zip(checkpoint.keys(pixels.variables), pixels.variables)}
        assert now == keys, name


@pytest.mark.parametrize('flags, obs_space, fragment', [
    (['--encoder.cnn_keys', 'rgb', '--encoder.mlp_keys', '$^'], {'image': IMAGE},
     "encoder.cnn_keys='rgb' and encoder.mlp_keys='$^' match no observation; the env observes image (64, 64, 3)"),
    (['--loss_scales.velocity', '2'], {'image': IMAGE}, 'loss_scales.velocity names no loss; the losses are image, reward'),
    ([], {'image': gymnasium.spaces.Box(0, 255, (48, 48, 3), np.uint8)},
     "observation 'image' has shape (48, 48, 3); the CNN takes 64x64 or 32x32 images"),
    ([], {'image': gymnasium.spaces.Box(0, 255, (32, 64, 3), np.uint8)},
     "observation 'image' has shape (32, 64, 3); the CNN takes 64x64 or 32x32 images"),
    ([], {'image': IMAGE, 'top': gymnasium.spaces.Box(0, 255, (32, 32, 3), np.uint8)},
     "the image keys image, top differ in size ((32, 32), (64, 64))"),
    ([], {'image': gymnasium.spaces.Box(0, 255, (32, 32, 3), np.uint8)},
     "decoder.resolution=64 is finer than the 32x32 images; use --decoder.resolution 32"),
])
def test_bad_observation_settings_are_one_line_errors(flags, obs_space, fragment):
    with pytest.raises(ValueError) as info:
        agent(obs_space, *flags)
    assert fragment in str(info.value) and '\n' not in str(info.value)


def test_a_logdir_that_is_a_file_or_holds_other_observations_is_refused_untouched(tmp_path):
    config = config_lib.load(['--configs', 'debug', '--task', 'dmc_cartpole_balance'])
    afile = tmp_path / 'file'
    afile.write_text('not a run')
    assert 'is a file, not a directory' in build.check_logdir(config, afile)
    assert 'is a file, not a directory' in build.check_logdir(config, afile / 'run')
    run = tmp_path / 'run'
    run.mkdir()
    config.update({'env.dmc.obs': 'state'}).save(run / 'config.yaml')
    before = (run / 'config.yaml').read_text()
    assert build.check_logdir(config.update({'env.dmc.obs': 'state'}), run) is None
    problem = build.check_logdir(config, run)
    assert "holds a run with env.dmc.obs='state', this one asks for env.dmc.obs='pixels'" in problem
    # Through the command line: one line, non-zero, and the run's files as they were.
    result = subprocess.run([sys.executable, '-m', 'vsg.train', '--configs', 'debug', '--task', 'dmc_cartpole_balance',
                             '--logdir', str(run)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'this one asks for' in result.stderr and sorted(p.name for p in run.iterdir()) == ['config.yaml']
    assert (run / 'config.yaml').read_text() == before


def test_state_run_trains_and_evaluates_end_to_end_without_rendering(tmp_path):
    logdir = tmp_path / 'state'
    train = [sys.executable, '-m', 'vsg.train', '--configs', 'debug', 'state', '--task', 'dmc_cartpole_balance',
             '--steps', '300', '--eval_every', '200', '--logdir', str(logdir)]
    result = subprocess.run(train, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
    assert any('train/position_loss' in line and 'train/velocity_loss' in line for line in lines)
    assert any('eval/return' in line for line in lines)
    episode = np.load(sorted((logdir / 'replay').glob('*.npz'))[0])
    assert 'image' not in episode.files and episode['position'].shape[1:] == (3,)
    evaluated = subprocess.run([sys.executable, '-m', 'vsg.evaluate', '--logdir', str(logdir), '--episodes', '1'],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])['video'] is None
