"""The offline mode: the probe, the VQ layer, data windows, frame stacking, and the stages through
the command line on a few gridworld episodes (each stage loading the previous one's output)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsg.offline import data, probe

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1',
       'TF_CPP_MIN_LOG_LEVEL': '3'}
GRID = ['--task', 'grid_collect', '--env.action_repeat', '1', '--env.time_limit', '15']


def offline(*args):
    return subprocess.run([sys.executable, '-m', 'vsg.offline', '--configs', 'offline', 'offline_debug', *map(str, args)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def grid_data(tmp_path_factory):
    out = tmp_path_factory.mktemp('grid') / 'data'
    result = subprocess.run([sys.executable, '-m', 'vsg.collect', *GRID, '--episodes', '6', '--outdir', str(out)],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


# --- Acting.

def test_one_hot_actions_are_drawn_from_the_softmax_with_a_seed_and_are_its_argmax_without():
    import tensorflow as tf
    from vsg.offline import bc
    probs = np.array([0.6, 0.3, 0.1, 0.0], np.float32)
    logits = tf.constant(np.log(np.maximum(probs, 1e-12))[None].repeat(4000, 0))
    drawn = bc.to_action(logits, True, tf.constant([3, 4])).numpy()
    assert drawn.shape == (4000, 4) and np.all(drawn.sum(-1) == 1)
    assert np.allclose(drawn.mean(0), probs, atol=0.03)  # 3 standard errors of 0.5 at n=4000 are 0.024
    assert np.array_equal(drawn, bc.to_action(logits, True, tf.constant([3, 4])).numpy())  # stateless: same seed, same draw
    assert np.all(bc.to_action(logits, True).numpy() == [1, 0, 0, 0])
    assert np.array_equal(bc.to_action(tf.constant([[-2.0, 0.5]]), False).numpy(), [[-1.0, 0.5]])


def test_keypoints_are_where_each_channel_is_active():
    import tensorflow as tf
    from common import nets
    layer = nets.KeypointEncoder(2, 'elu')
    images = np.zeros((2, 3, 64, 64, 3), np.uint8)  # any leading axes
    assert layer(images).shape == (2, 3, 8)
    # The softmax's expected position, by hand: one map whose logits peak at row 8, column 24 of 32.
    logits = np.full((1, 32, 32, 1), -30.0, np.float32)
    logits[0, 8, 24, 0] = 30.0
    layer._convs = [lambda x: tf.constant(logits)]  # the map itself, to check the pooling alone
    x, y = layer(images[:1, 0]).numpy()[0]
    grid = np.linspace(-1, 1, 32)
    assert np.allclose([x, y], [grid[24], grid[8]], atol=1e-5)


# --- The probe.

def test_probe_is_near_zero_for_linear_latents_and_near_the_variance_for_noise():
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (2000, 3))
    mixing = rng.normal(size=(3, 8))
    z = actions @ mixing + 0.5
    mse, variance = probe.score(z[:1500], actions[:1500], z[1500:], actions[1500:], ridge=1e-6)
    assert mse.shape == (3,) and np.all(mse < 1e-6)
    np.testing.assert_allclose(variance, actions[1500:].var(0))
    noise = rng.normal(size=(2000, 8))
    mse, variance = probe.score(noise[:1500], actions[:1500], noise[1500:], actions[1500:], ridge=1e-3)
    assert np.all(np.abs(mse / variance - 1) < 0.1)  # 1/3 per dim for uniform actions
    assert probe.summary(mse, variance, 'p')['p_mse'] == pytest.approx(mse.mean())


def test_knn_probe_reads_a_code_the_linear_probe_cannot_and_not_noise():
    rng = np.random.default_rng(0)
    moves = rng.integers(0, 5, 2000)
    actions = np.eye(5)[moves]
    # Each of 5 moves named by a point on one axis: the middle moves' one-hot targets are bumps along
    # z, which no straight line fits.
    z = (moves + rng.normal(0, 0.05, 2000))[:, None]
    linear, variance = probe.score(z[:1500], actions[:1500], z[1500:], actions[1500:], ridge=1e-6)
    knn = probe.knn_score(z[:1500], actions[:1500], z[1500:], actions[1500:], k=10)
    assert knn.shape == (5,) and np.all(knn < 1e-6)
    assert linear.mean() > 0.6 * variance.mean()
    # A code in large units reads the same: each dimension is standardised first.
    np.testing.assert_allclose(probe.knn_score(1000 * z[:1500], actions[:1500], 1000 * z[1500:], actions[1500:], k=10), knn)
    # Noise: the mean of k random actions, (1 + 1/k) times the variance.
    noise = rng.normal(size=(2000, 8))
    knn = probe.knn_score(noise[:1500], actions[:1500], noise[1500:], actions[1500:], k=10)
    assert np.all(np.abs(knn / variance - 1.1) < 0.15)


# --- The VQ layer.

def test_vq_passes_the_gradient_straight_through():
    import tensorflow as tf
    from vsg.offline.lapo import VectorQuantizer
    vq = VectorQuantizer(groups=2, codes=3)
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 6)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out, _, index = vq(x)
    jacobian = tape.jacobian(out, x).numpy().reshape(24, 24)
    np.testing.assert_allclose(jacobian, np.eye(24), atol=1e-6)
    codes = vq.codebook.numpy()
    expected = np.concatenate([codes[g, index.numpy()[:, g]] for g in range(2)], -1)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)  # the forward value is the codes


def test_vq_ema_update_matches_a_hand_computation():
    import tensorflow as tf
    from vsg.offline.lapo import VectorQuantizer
    decay, eps = 0.9, 1e-5
    vq = VectorQuantizer(groups=1, codes=2, decay=decay, eps=eps)
    vq.build((None, 2))
    codebook = np.array([[[0.0, 0.0], [1.0, 1.0]]], np.float32)
    vq.codebook.assign(codebook)
    vq.sums.assign(codebook)  # counts start at 1, so sums = codes
    vq.placed.assign(1.0)  # as after the first training batch
    x = np.array([[0.1, -0.1], [0.2, 0.0], [0.9, 1.2]], np.float32)  # two inputs near code 0, one near code 1
    out, commitment, index = vq(tf.constant(x), training=True)
    assert index.numpy()[:, 0].tolist() == [0, 0, 1]
    np.testing.assert_allclose(out.numpy(), [[0, 0], [0, 0], [1, 1]], atol=1e-6)  # codes before the update
    counts = decay * 1 + (1 - decay) * np.array([2.0, 1.0])
    sums = decay * codebook[0] + (1 - decay) * np.array([x[0] + x[1], x[2]])
    total = counts.sum()
    smoothed = (counts + eps) / (total + 2 * eps) * total
    np.testing.assert_allclose(vq.counts.numpy()[0], counts, rtol=1e-6)
    np.testing.assert_allclose(vq.sums.numpy()[0], sums, rtol=1e-6)
    np.testing.assert_allclose(vq.codebook.numpy()[0], sums / smoothed[:, None], rtol=1e-5)
    assert float(commitment) == pytest.approx(np.mean((x - [[0, 0], [0, 0], [1, 1]]) ** 2), rel=1e-6)
    vq(tf.constant(x), training=False)  # no update outside training
    np.testing.assert_allclose(vq.counts.numpy()[0], counts, rtol=1e-6)


def test_vq_runs_in_float32_under_a_16_bit_policy():
    import keras
    import tensorflow as tf
    from vsg.offline.lapo import VectorQuantizer
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
    try:
        vq = VectorQuantizer(groups=2, codes=4)
        out, commitment, _ = vq(tf.cast(tf.random.normal([8, 6], seed=0), tf.bfloat16), training=True)
    finally:
        keras.mixed_precision.set_global_policy('float32')
    assert out.dtype == tf.float32 and vq.codebook.dtype == tf.float32 and float(vq.placed) == 1.0


def test_vq_places_its_codes_at_inputs_of_the_first_training_batch():
    import tensorflow as tf
    from vsg.offline.lapo import VectorQuantizer
    tf.random.set_seed(0)  # the codes are placed at random inputs (the pipeline seeds the same way)
    vq = VectorQuantizer(groups=2, codes=3, decay=0.0)
    x = tf.constant(np.random.default_rng(2).normal(5, 1, (16, 4)), tf.float32)  # far from the initial codes
    vq(x)
    far = vq.codebook.numpy().copy()
    vq(x, training=True)
    codes = vq.codebook.numpy()  # decay 0: the codes are the means of their inputs after the placing
    assert not np.allclose(codes, far) and np.all(np.abs(codes - 5) < 3) and float(vq.placed) == 1.0
    vq.decay = 0.5
    vq(x + 10, training=True)  # placed once only: later batches move the codes by the EMA
    moved = vq.codebook.numpy()
    assert not np.allclose(moved, codes) and np.abs(moved - 5).max(-1).min() < 3  # some codes stay


def test_vq_restarts_dead_codes_at_inputs():
    import tensorflow as tf
    from vsg.offline.lapo import VectorQuantizer
    tf.random.set_seed(0)
    vq = VectorQuantizer(groups=1, codes=4, decay=0.5, dead_usage=0.3)
    vq.build((None, 2))
    vq.codebook.assign(np.array([[[0, 0], [50, 50], [60, 60], [70, 70]]], np.float32))
    vq.sums.assign(vq.codebook)
    vq.placed.assign(1.0)
    x = tf.constant(np.random.default_rng(0).normal(0, 0.1, (8, 2)), tf.float32)
    for _ in range(2):  # unused counts: 1 -> 0.5 -> 0.25, below 0.3
        vq(x, training=True)
    codes = vq.codebook.numpy()[0]
    assert np.abs(codes[1:]).max() < 1  # the far codes now sit at inputs
    assert any(np.allclose(code, row) for code in codes[1:] for row in x.numpy())


# --- The forward models.

def lapo_model(fdm, stacked, future, latent='continuous'):
    """The offline_debug latent action model with the given FDM, built on one batch."""
    import keras
    from vsg import build
    from vsg.offline.lapo import LatentActionModel
    config = build.parse(['--configs', 'offline', 'offline_debug', '--offline.lapo.fdm', fdm,
                          '--offline.lapo.latent', latent], need_logdir=False)
    keras.utils.set_random_seed(0)
    model = LatentActionModel('image', future.shape[1:], config.offline.net, config.offline.lapo)
    model(stacked, future)
    return model


def frames(batch=3, stack=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (batch, 64, 64, 3 * stack), np.uint8), rng.integers(0, 256, (batch, 64, 64, 3), np.uint8))


def test_unet_fdm_predicts_the_target_shape_and_copies_o_t_until_trained():
    import tensorflow as tf
    from vsg.offline.lapo import as_target
    stacked, future = frames()
    model = lapo_model('unet', stacked, future)
    assert not any(v.path.startswith('lapo/fdm/encoder') or 'decoder' in v.path for v in model.fdm.variables)
    z = tf.constant(np.random.default_rng(1).normal(size=(3, 4)), tf.float32)
    prediction = model.fdm(stacked, z)
    assert prediction.shape == future.shape
    # The change layer starts at zero: whatever z says, the untrained U-Net predicts o_t, the last stacked frame.
    np.testing.assert_array_equal(prediction.numpy(), as_target('image', stacked[..., -3:]).numpy())
    vector = lapo_model('vector', stacked, future)
    assert vector.fdm(stacked, z).shape == future.shape


def test_the_gradient_reaches_z_through_the_unet():
    import tensorflow as tf
    stacked, future = frames()
    model = lapo_model('unet', stacked, future)
    target = tf.random.uniform(future.shape, -0.5, 0.5, seed=0)
    z = tf.Variable(np.random.default_rng(1).normal(size=(3, 4)), dtype=tf.float32)

    def z_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model.fdm(stacked, z) - target) ** 2)
        return tape.gradient(loss, z).numpy()
    # Through the zero-initialised change layer nothing reaches z yet; once that layer has weights
    # (after the first update), every sample's z gets a gradient.
    assert np.all(z_gradient() == 0)
    change = model.fdm._unet._out.kernel
    change.assign(tf.random.normal(change.shape, stddev=0.1, seed=0))
    assert np.all(np.abs(z_gradient()).sum(-1) > 0)


def test_a_held_out_loss_leaves_the_codebook_alone_and_a_training_loss_moves_it():
    stacked, future = frames(batch=8)
    model = lapo_model('unet', stacked, future, latent='vq')
    vq = model.idm.quantizer
    before = [v.numpy().copy() for v in (vq.codebook, vq.counts, vq.sums, vq.placed)]
    model.loss(stacked, future, training=False)  # what the held-out reconstruction computes
    for old, new in zip(before, (vq.codebook, vq.counts, vq.sums, vq.placed)):
        np.testing.assert_array_equal(old, new.numpy())
    model.loss(stacked, future)
    assert not np.array_equal(before[1], vq.counts.numpy())


def test_the_gaussian_latent_samples_in_training_takes_its_mean_otherwise_and_costs_its_kl():
    import tensorflow as tf
    stacked, future = frames(batch=4)
    model = lapo_model('unet', stacked, future, latent='gaussian')
    assert model.idm._head._out.units == 2 * 4  # mean and std of a 4-d latent (offline_debug)
    z_eval, kl, index = model.idm(stacked, future)
    assert index is None and z_eval.shape == (4, 4)
    np.testing.assert_array_equal(z_eval.numpy(), model.idm(stacked, future)[0].numpy())  # the mean
    z_train = model.idm(stacked, future, training=True)[0]
    assert not np.allclose(z_train.numpy(), z_eval.numpy())
    # The KL by hand from the head's mean and std, summed over z, averaged over the batch.
    x = model.idm._head(model.idm._encoder(tf.concat([tf.cast(stacked, tf.float32), tf.cast(future, tf.float32),
                                                       tf.cast(future, tf.float32) - tf.cast(stacked[..., -3:], tf.float32)], -1))).numpy()
    mean, std = x[:, :4], np.log1p(np.exp(x[:, 4:])) + 1e-3
    np.testing.assert_allclose(mean, z_eval.numpy(), rtol=1e-5, atol=1e-6)
    expected = np.mean(np.sum(0.5 * (mean ** 2 + std ** 2 - 1) - np.log(std), -1))
    assert float(kl) == pytest.approx(expected, rel=1e-4)
    loss, metrics = model.loss(stacked, future, training=False)
    charged = max(float(metrics['kl']), 4.0)  # offline.lapo.kl_free nats come free
    assert float(loss) == pytest.approx(float(metrics['reconstruction']) + 1e-4 * charged, rel=1e-5)
    assert 'commitment' not in metrics


def test_the_pooled_idm_encoder_tells_what_moved_but_not_where():
    from vsg.offline.lapo import PooledConvEncoder
    encoder = PooledConvEncoder(4, 'elu')

    def frame(row, col, size=6):
        image = np.full((1, 64, 64, 3), 128, np.uint8)
        image[0, row:row + size, col:col + size] = 255
        return image
    here = encoder(frame(16, 16)).numpy()
    assert here.shape == (1, 32)
    # The same patch 8 pixels (the three convolutions' stride) away, clear of the borders: the same features.
    np.testing.assert_allclose(encoder(frame(24, 32)).numpy(), here, rtol=1e-5, atol=1e-6)
    assert not np.allclose(encoder(frame(16, 16, size=10)).numpy(), here)  # a different patch differs


def test_a_checkpoint_of_the_other_fdm_is_refused(grid_data, tmp_path):
    logdir = tmp_path / 'run'
    base = ['--offline.data', grid_data, '--logdir', logdir, '--offline.stage', 'lapo']
    result = offline(*base, '--offline.lapo.fdm', 'vector')
    assert result.returncode == 0, result.stdout + result.stderr
    message = main_error([*base, '--offline.lapo.fdm', 'unet', '--offline.lapo.steps', 15])
    assert 'lapo.npz does not fit this model' in message and 'lapo/fdm/unet/' in message


# --- Data.

def episode(length, start, actions=2):
    image = np.zeros((length, 64, 64, 3), np.uint8)
    image[:, 0, 0, 0] = np.arange(start, start + length)
    action = np.arange(length * actions, dtype=np.float32).reshape(length, actions) + 100 * start
    return {'image': image, 'action': action, 'reward': np.ones(length, np.float32), 'is_first': np.arange(length) == 0}


def test_windows_stack_frames_inside_episodes_and_align_actions():
    dataset = data.Dataset([episode(4, 0), episode(3, 10)], ['a', 'b'], 'pixels', frame_stack=2)
    assert dataset.step_shape == (64, 64, 6)
    steps = dataset.transitions([0, 1])
    assert steps.tolist() == [0, 1, 2, 4, 5]  # steps with a next action
    assert dataset.transitions([1], offset=2).tolist() == [4]
    stacked = dataset.stacked(np.array([0, 2, 4, 5]))
    # frame ids: the first frame repeated at an episode's start, the previous one otherwise
    assert stacked[:, 0, 0, [0, 3]].tolist() == [[0, 0], [1, 2], [10, 10], [10, 11]]
    assert dataset.future(np.array([2, 5]), np.array([3, 3]))[:, 0, 0, 0].tolist() == [3, 12]  # not past the end
    assert dataset.next_actions(np.array([0, 4])).tolist() == [[2, 3], [1002, 1003]]
    assert dataset.returns.tolist() == [4, 3] and not dataset.discrete
    assert data.is_one_hot(np.array([[0, 0], [0, 1], [1, 0]], np.float32))
    train, test = data.split(5, 0.2, seed=0)
    assert len(test) == 1 and sorted([*train, *test]) == list(range(5))
    with pytest.raises(data.DataError, match='unknown representation'):
        data.check_representation('slotz')


def test_representations_find_their_keys_by_shape_not_by_name():
    steps = 3
    episode = {'frames': np.zeros((steps, 64, 64, 3), np.uint8), 'position': np.ones((steps, 3), np.float32),
               'velocity': np.full((steps, 2), 2, np.float32), 'action': np.zeros((steps, 1), np.float32),
               'reward': np.zeros(steps, np.float32), 'is_first': np.eye(1, steps, dtype=bool)[0],
               'log_scored': np.zeros((steps, 1), np.int32)}
    pixels = data.representation('pixels', episode)
    assert (pixels.kind, pixels.keys) == ('image', ('frames',)) and pixels.convert(episode).shape == (steps, 64, 64, 3)
    state = data.representation('state', episode)
    assert (state.kind, state.keys) == ('vector', ('position', 'velocity'))  # not the action, not integers
    np.testing.assert_array_equal(state.convert(episode)[0], [1, 1, 1, 2, 2])
    without_frames = {key: value for key, value in episode.items() if key != 'frames'}
    with pytest.raises(data.DataError, match="no image observations for representation 'pixels'"):
        data.representation('pixels', without_frames)
    with pytest.raises(data.DataError, match="lacks 'frames'"):  # a later episode of another env
        data.Dataset([episode, without_frames], ['a.npz', 'b.npz'], 'pixels')


def test_dataset_json_gives_the_env_and_a_corrupt_one_is_a_data_error(tmp_path):
    assert data.recorded_env(tmp_path) is None
    (tmp_path / 'dataset.json').write_text(json.dumps({'task': 'grid_collect', 'env': {'env.time_limit': 15}}))
    assert data.recorded_env(tmp_path) == {'task': 'grid_collect', 'env.time_limit': 15}
    (tmp_path / 'dataset.json').write_text('{"task": ')
    with pytest.raises(data.DataError, match='unreadable .*dataset.json'):
        data.recorded_env(tmp_path)


def test_stacking_policy_restarts_its_frames_with_an_episode():
    from vsg.offline.rollout import stacking_policy
    seen = []
    policy = stacking_policy(lambda stacked: seen.append(stacked.copy()) or np.zeros((2, 1)),
                             lambda obs: obs['image'], frame_stack=2)
    frame = lambda a, b: np.array([[a], [b]], np.float32)
    state = None
    for images, first in [((1, 5), (True, True)), ((2, 6), (False, False)), ((3, 9), (False, True))]:
        _, state = policy({'image': frame(*images), 'is_first': np.array(first)}, state)
    assert [s.tolist() for s in seen] == [[[1, 1], [5, 5]], [[1, 2], [5, 6]], [[2, 3], [9, 9]]]


# --- The stages through the command line.

def main_error(argv):
    """The one-line exit message of vsg.offline run in this process."""
    from vsg.offline import pipeline
    with pytest.raises(SystemExit) as exit:
        pipeline.main(['--configs', 'offline', 'offline_debug', *map(str, argv)])
    message = str(exit.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_stages_load_each_other_and_all_writes_the_results_table(grid_data, tmp_path):
    logdir = tmp_path / 'run'
    base = ['--offline.data', grid_data, '--logdir', logdir]
    assert 'lapo.npz does not exist; run the lapo stage first' in main_error([*base, '--offline.stage', 'bc'])
    result = offline(*base, '--offline.stage', 'lapo')
    assert result.returncode == 0, result.stdout + result.stderr
    assert {'lapo.npz', 'lapo_init.npz'} <= {p.name for p in logdir.iterdir()}

    # `all` finds LAPO done; each later stage loads the earlier ones' checkpoints from the logdir.
    result = offline(*base, '--offline.stage', 'all')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'lapo: done (10 updates' in result.stdout
    assert {'probe.json', 'bc_latent.npz', 'bc_action.npz', 'decode.json', 'eval.json'} <= {p.name for p in logdir.iterdir()}
    assert {p.name for p in logdir.glob('decoder_m?.npz')} == {'decoder_m1.npz', 'decoder_m2.npz', 'decoder_m5.npz'}
    assert {p.name for p in logdir.glob('bc_m?.npz')} == {'bc_m1.npz', 'bc_m2.npz', 'bc_m5.npz'}
    probes = json.loads((logdir / 'probe.json').read_text())
    assert {'trained', 'random', 'action_variance'} <= set(probes) and len(probes['trained']['mse_per_dim']) == 5
    table = (logdir / 'results.md').read_text()
    for text in ('trained IDM', 'random IDM', 'action variance', 'BC on all true actions',
                 'latent BC + decoder, M=1', 'latent BC + decoder, M=5', 'BC on the M=1 labelled trajectories',
                 "fitted on π(o)'s outputs", 'random actions', 'data policy'):
        assert text in table
    results = json.loads((logdir / 'results.json').read_text())
    assert set(results['returns']) == {'random', 'bc', 'latent_m1', 'latent_m2', 'latent_m5', 'bc_m1', 'bc_m2', 'bc_m5'}
    assert all(len(row['returns']) == 2 for row in json.loads((logdir / 'eval.json').read_text()).values())
    assert results['data_policy']['policy'] == 'random' and results['episodes'] == {'train': 5, 'test': 1}
    records = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
    keys = set().union(*records)
    assert {'lapo/reconstruction', 'lapo/probe_mse', 'lapo/probe_knn_mse', 'probe/trained_mse',
            'probe/trained_knn_mse', 'bc_latent/latent_mse',
            'bc_action/action_loss', 'decoder_m1/action_loss', 'eval/bc_return'} <= keys
    assert list(logdir.glob('events.out.tfevents.*'))

    # More LAPO updates resume from its checkpoint; the BC trained on the old one is then refused.
    more = offline(*base, '--offline.stage', 'lapo', '--offline.lapo.steps', 15)
    assert more.returncode == 0 and f'resumed from {logdir / "lapo.npz"} at update 10' in more.stdout
    stale = main_error([*base, '--offline.stage', 'bc', '--offline.lapo.steps', 15])
    assert 'bc_latent.npz was trained on another lapo.npz' in stale


def _rows_among(rows, pool):
    """Whether every row of `rows` is (to float precision) a row of `pool`."""
    rows, pool = np.asarray(rows, np.float32).reshape(len(rows), -1), np.asarray(pool, np.float32).reshape(len(pool), -1)
    return all(np.min(np.abs(pool - row).max(-1)) < 1e-5 for row in rows)


def test_the_decoder_fits_the_chosen_inputs_and_the_few_label_clone_sees_only_the_labelled_episodes(
        grid_data, tmp_path, monkeypatch):
    from common import config as config_lib
    from vsg.offline import pipeline
    argv = ['--configs', 'offline', 'offline_debug', '--offline.data', str(grid_data), '--logdir', str(tmp_path / 'run'),
            '--offline.decode.labels', '2']
    for stage in ('lapo', 'bc'):
        pipeline.run(config_lib.load([*argv, '--offline.stage', stage]))
    batches = {}

    def spy(run, name, model, opt, loss_fn, make_batch, steps, evaluate=None, offset=0, inputs=()):
        batches[name] = (make_batch(np.random.default_rng(0)), list(inputs))  # what it would train on
    monkeypatch.setattr(pipeline.Run, 'train', spy)
    for choice in ('policy', 'idm'):
        run = pipeline.Run(config_lib.load([*argv, '--offline.stage', 'decode', '--offline.decode.input', choice]))
        pipeline.run_decode(run)
        labelled = run.data.transitions(run.train_eps[:2])
        assert 0 < len(labelled) < len(run.train_steps)
        policy_z = pipeline._outputs(pipeline.load_policy(run, 'latent_policy', run.cfg.lapo.latent_size),
                                     run.seen.stacked, labelled)
        idm_z = run.latents(run.idm(), labelled)
        (z, actions), inputs = batches['decoder_m2']
        assert _rows_among(z, policy_z if choice == 'policy' else idm_z)
        assert not _rows_among(z, idm_z if choice == 'policy' else policy_z)
        assert inputs == (['lapo', 'bc_latent'] if choice == 'policy' else ['lapo'])
        (frames, actions), _ = batches['bc_m2']
        assert _rows_among(frames, run.seen.stacked(labelled))
        assert not _rows_among(frames, run.seen.stacked(np.setdiff1d(run.train_steps, labelled)))
        assert _rows_among(actions, run.data.next_actions(labelled))
        decoded = json.loads((tmp_path / 'run' / 'decode.json').read_text())['2']
        assert decoded['decoder_input'] == choice and decoded['labelled_steps'] == len(labelled)


def test_lapo_alone_runs_on_action_free_episodes(tmp_path):
    directory = tmp_path / 'video'
    directory.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = rng.integers(0, 255, (6, 64, 64, 3), np.uint8)
        np.savez(directory / f'2026-{i}-6.npz', image=image, is_first=np.arange(6) == 0)
    result = offline('--offline.data', directory, '--logdir', tmp_path / 'run', '--offline.stage', 'lapo',
                     '--offline.lapo.latent', 'vq')  # the pipeline test above runs the default, continuous
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'no actions' in result.stdout and (tmp_path / 'run' / 'lapo.npz').exists()
    assert "lacks 'action'" in main_error(['--offline.data', directory, '--logdir', tmp_path / 'run', '--offline.stage', 'probe'])


@pytest.mark.parametrize('args, message', [
    (['--offline.stage', 'train'], "offline.stage='train' is not allowed"),
    ([], '--offline.data is required'),
    (['--offline.data', 'no/such/dir'], 'data directory no/such/dir does not exist'),
    (['--offline.data', 'EMPTY'], 'holds no episode .npz files'),
    (['--offline.data', 'NOIMAGE'], "the data holds no image observations for representation 'pixels'"),
    (['--offline.data', 'NOIMAGE', '--offline.stage', 'probe'], "the data holds no image observations"),
    (['--offline.repr', 'slotz', '--offline.data', 'EMPTY'], "unknown representation 'slotz'; known: pixels, state, slots, masks"),
    (['--offline.lapo.latent', 'gumbel', '--offline.data', 'EMPTY'], "offline.lapo.latent='gumbel' is not allowed"),
    (['--offline.lapo.kl_free', '-1', '--offline.data', 'EMPTY'], 'offline.lapo.kl_free=-1.0 must be at least 0'),
    (['--offline.lapo.fdm', 'resnet', '--offline.data', 'EMPTY'],
     "offline.lapo.fdm='resnet' is not allowed; choose one of unet, vector"),
    (['--offline.bc.encoder', 'vit', '--offline.data', 'EMPTY'],
     "offline.bc.encoder='vit' is not allowed; choose one of conv, keypoints"),
    (['--offline.decode.input', 'z', '--offline.data', 'EMPTY'],
     "offline.decode.input='z' is not allowed; choose one of policy, idm"),
    (['--offline.discrete_act', 'mode', '--offline.data', 'EMPTY'],
     "offline.discrete_act='mode' is not allowed; choose one of sample, argmax"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, message):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'noimage').mkdir()
    np.savez(tmp_path / 'noimage' / 'a-b-3.npz', action=np.zeros((3, 2)), reward=np.zeros(3))
    places = {'EMPTY': tmp_path / 'empty', 'NOIMAGE': tmp_path / 'noimage'}
    args = [str(places.get(arg, arg)) for arg in args]
    assert message in main_error(['--offline.stage', 'lapo', *args, '--logdir', tmp_path / 'run'])


def test_a_bad_stage_from_the_command_line_is_one_line_without_a_traceback(tmp_path):
    result = offline('--offline.stage', 'nope', '--offline.data', tmp_path, '--logdir', tmp_path / 'run')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (  # TensorFlow's own log lines may come before it
        "error: offline.stage='nope' is not allowed; choose one of lapo, probe, bc, decode, eval, all")


@pytest.mark.parametrize('args, message', [
    (('grid_collect', 'slotz', '0'), "error: REPR 'slotz': unknown representation 'slotz'; known: "),
    (('grid_collect', 'pixels', 'x'), "error: SEED 'x' must be a whole number"),
])
def test_offline_script_refuses_a_bad_repr_or_seed_in_one_line_before_collecting(tmp_path, args, message):
    result = subprocess.run(['bash', 'scripts/offline.sh', *args], cwd=ROOT, capture_output=True, text=True,
                            env={**ENV, 'DATA': str(tmp_path / 'data')}, timeout=120)
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / 'data').exists()
