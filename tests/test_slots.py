"""The slot model (vsg/slots): slot attention's symmetries, masks, the learned initial slots, the loss,
the checkpoint by name and its refusals, the training run through the command line (killed and
resumed) and its one-line errors for bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common import episodes
from vsg.slots import data as data_lib
from vsg.slots import evaluation
from vsg.slots.settings import SlotConfig, SlotError

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1',
       'TF_CPP_MIN_LOG_LEVEL': '3'}
TINY = SlotConfig(resolution=8, tokens=4, encoder_channels=4, mlp_hidden=8, num_slots=3, slot_size=8, iters_first=2,
                  iters_later=1, predictor_heads=2, decoder_grid=4, decoder_size=8, decoder_channels=4)
SIDE = 16  # the frames of the slots_debug config


def tiny_model(config=TINY, seed=0):
    from vsg.slots import train
    return train.build(config, seed)


def random_frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


# --- The model.

def test_slot_attention_permutes_with_the_slots_and_ignores_the_order_of_the_tokens():
    import tensorflow as tf
    from vsg.slots.model import SlotAttention
    rng = np.random.default_rng(0)
    attention = SlotAttention(slot_size=8, mlp_hidden=16)
    slots = tf.constant(rng.normal(size=(2, 4, 8)), tf.float32)
    tokens = tf.constant(rng.normal(size=(2, 10, 6)), tf.float32)  # position already embedded
    out = attention(slots, tokens, iterations=3).numpy()
    order = [2, 0, 3, 1]
    permuted = attention(tf.gather(slots, order, axis=1), tokens, iterations=3).numpy()
    np.testing.assert_allclose(permuted, out[:, order], rtol=1e-5, atol=1e-5)
    shuffled = attention(slots, tf.gather(tokens, rng.permutation(10), axis=1), iterations=3).numpy()
    np.testing.assert_allclose(shuffled, out, rtol=1e-5, atol=1e-5)


def test_the_gradient_skips_all_but_the_last_iteration_and_reaches_the_starting_slots_straight():
    import tensorflow as tf
    from vsg.slots.model import SlotAttention
    rng = np.random.default_rng(1)
    attention = SlotAttention(slot_size=8, mlp_hidden=16)
    start = tf.constant(rng.normal(size=(2, 4, 8)), tf.float32)
    tokens = tf.constant(rng.normal(size=(2, 10, 6)), tf.float32)
    weights = tf.constant(rng.normal(size=(2, 4, 8)), tf.float32)  # a loss that weighs every entry differently
    with tf.GradientTape() as tape:
        tape.watch(start)
        out = attention(start, tokens, iterations=3)
        loss = tf.reduce_sum(weights * out)
    through_all = tape.gradient(loss, start)
    before_last = attention(start, tokens, iterations=2)  # a constant here: no tape
    with tf.GradientTape() as tape:
        tape.watch(before_last)
        last = attention(before_last, tokens, iterations=1)
        loss_last = tf.reduce_sum(weights * last)
    np.testing.assert_allclose(out.numpy(), last.numpy(), rtol=1e-5, atol=1e-5)  # the value is all 3 iterations'
    np.testing.assert_allclose(through_all.numpy(), tape.gradient(loss_last, before_last).numpy(), rtol=1e-4, atol=1e-6)
    with tf.GradientTape() as tape:  # one iteration: the ordinary gradient, nothing skipped
        tape.watch(start)
        one = tf.reduce_sum(weights * attention(start, tokens, iterations=1))
    assert np.abs(tape.gradient(one, start).numpy()).max() > 0


def test_masks_sum_to_one_at_every_pixel_and_shapes_follow_the_config():
    model = tiny_model()
    out = model(random_frames((2, 3, 8, 8, 3)))
    assert out['slots'].shape == (2, 3, 3, 8) and out['recon'].shape == (2, 3, 8, 8, 3)
    assert out['masks'].shape == (2, 3, 3, 8, 8)
    np.testing.assert_allclose(out['masks'].numpy().sum(2), 1.0, atol=1e-5)
    upsampled = tiny_model(SlotConfig(**{**TINY.as_dict(), 'decoder_size': 4}))  # composed at 4x4, upsampled
    masks = upsampled(random_frames((1, 2, 8, 8, 3)))['masks'].numpy()
    assert masks.shape == (1, 2, 3, 8, 8)
    np.testing.assert_allclose(masks.sum(2), 1.0, atol=1e-5)


def test_the_learned_initial_slots_are_their_means_at_inference_and_sampled_in_training():
    model = tiny_model()
    means = model.init.mean.numpy()
    assert means.shape == (3, 8) and len(np.unique(means.round(6), axis=0)) == 3  # one distinct start per slot
    first, second = model.init(batch_size=2, training=False).numpy(), model.init(batch_size=2, training=False).numpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], means)
    sampled, again = model.init(batch_size=2, training=True).numpy(), model.init(batch_size=2, training=True).numpy()
    assert not np.allclose(sampled, first) and not np.allclose(sampled, again)
    frames = random_frames((2, 3, 8, 8, 3))
    np.testing.assert_array_equal(model.track(frames).numpy(), model.track(frames).numpy())
    assert not np.allclose(model.track(frames, training=True).numpy(), model.track(frames).numpy())


def test_the_loss_is_the_mse_of_the_slots_composed_by_hand():
    model = tiny_model()
    frames = random_frames((2, 2, 8, 8, 3), seed=1)
    slots = model.track(frames).numpy()  # [B, T, K, D]
    decoded = model.decoder(slots.reshape(-1, 8)).numpy().reshape(2, 2, 3, 8, 8, 4)
    alpha = np.exp(decoded[..., 3] - decoded[..., 3].max(2, keepdims=True))
    masks = alpha / alpha.sum(2, keepdims=True)
    recon = (masks[..., None] * decoded[..., :3]).sum(2)
    expected = np.mean((recon - (frames / 255 - 0.5)) ** 2)
    loss, _ = model.loss(frames, training=False)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # [-0.5, 0.5] or [0, 1] makes no difference to a squared difference.
    assert expected == pytest.approx(np.mean((recon + 0.5 - frames / 255) ** 2), rel=1e-6)


def test_encode_carries_the_slots_across_chunks_as_one_window():
    model = tiny_model()
    frames = random_frames((2, 5, 8, 8, 3), seed=2)
    slots, masks = model.encode(frames, chunk=2)
    assert slots.shape == (2, 5, 3, 8) and masks.shape == (2, 5, 3, 8, 8)
    np.testing.assert_allclose(slots, model.track(frames).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masks, model.decode(slots)[1].numpy(), rtol=1e-5, atol=1e-6)


def test_stepping_one_frame_at_a_time_from_the_last_slots_equals_encoding_the_window_at_once():
    model = tiny_model()
    frames = random_frames((2, 4, 8, 8, 3), seed=5)
    slots, masks = model.encode(frames)
    stepped, stepped_masks, last = [], [], None
    for t in range(4):  # what a live rollout does, one env step after the other
        step_slots, step_masks = model.encode(frames[:, t:t + 1], slots=last)
        last = step_slots[:, -1]
        stepped.append(step_slots)
        stepped_masks.append(step_masks)
    np.testing.assert_allclose(np.concatenate(stepped, 1), slots, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(stepped_masks, 1), masks, rtol=1e-5, atol=1e-6)


# --- The checkpoint by name.

def test_without_carry_every_frame_starts_from_the_learned_slots_and_there_is_no_predictor():
    model = tiny_model(SlotConfig(**{**TINY.as_dict(), 'carry': False}))
    assert model.predictor is None and not any('predictor' in v.path for v in model.variables)
    frames = random_frames((2, 4, 8, 8, 3), seed=3)
    together = model.track(frames).numpy()
    for t in range(4):  # each frame's slots are those of the frame alone
        np.testing.assert_allclose(together[:, t], model.track(frames[:, t:t + 1]).numpy()[:, 0], rtol=1e-5, atol=1e-5)
    carrying = tiny_model()  # a model that carries: its later frames start elsewhere
    assert not np.allclose(carrying.track(frames).numpy()[:, 1:], model.track(frames).numpy()[:, 1:], atol=1e-3)


def test_a_reloaded_checkpoint_reproduces_the_reconstructions_and_refuses_other_sizes(tmp_path):
    from common import checkpoint
    from vsg import slots
    from vsg.slots import store
    model = tiny_model(seed=3)
    checkpoint.save(tmp_path / 'slots.npz', model.variables, {'step': 7}, meta=store.meta(TINY, ['a.npz']))
    loaded, config = slots.load(tmp_path, num_slots=3, resolution=8)  # a logdir finds its slots.npz
    assert config == TINY
    frames = random_frames((2, 4, 8, 8, 3), seed=4)
    expected_slots, expected_masks = model.encode(frames)
    got_slots, got_masks = loaded.encode(frames)
    np.testing.assert_array_equal(got_slots, expected_slots)
    np.testing.assert_array_equal(got_masks, expected_masks)
    np.testing.assert_array_equal(loaded.decode(got_slots)[0].numpy(), model.decode(expected_slots)[0].numpy())

    with pytest.raises(SlotError) as refused:
        slots.load(tmp_path / 'slots.npz', num_slots=4, slot_size=16, resolution=8)
    message = str(refused.value)
    assert '\n' not in message and 'num_slots=3 (wanted 4)' in message and 'slot_size=8 (wanted 16)' in message
    assert 'resolution' not in message
    with pytest.raises(SlotError, match='does not exist'):
        slots.load(tmp_path / 'nothing.npz')
    checkpoint.save(tmp_path / 'other.npz', model.variables, {'step': 1})  # no slot config
    with pytest.raises(SlotError, match='holds no slot model'):
        slots.load(tmp_path / 'other.npz')


# --- Evaluation parts.

def test_the_grid_baseline_splits_the_frame_into_k_equal_cells():
    ids = evaluation.grid_ids((2, 3, 6, 6), 6)
    assert ids.shape == (2, 3, 6, 6)
    np.testing.assert_array_equal(ids[0, 0], np.repeat(np.repeat(np.arange(6).reshape(2, 3), 3, 0), 2, 1))
    assert set(evaluation.grid_ids((5, 7), 7).ravel()) == set(range(7))  # a prime count: stripes
    from common.segmentation import fg_ari
    np.testing.assert_allclose(fg_ari(ids + 1, ids), 1.0)  # the grid itself scores 1 against itself


def test_slot_identity_is_one_for_an_object_kept_by_one_slot_and_halves_when_it_switches():
    """And slot_mass, what it is computed from, against the same hand count."""
    ids = np.zeros((4, 2, 2), np.uint8)
    ids[:, 0, 0], ids[:, 1, 1] = 1, 2  # object 1 top left, object 2 bottom right, background elsewhere
    masks = np.zeros((4, 3, 2, 2))
    masks[:, 0] = 1.0  # slot 0 holds everything ...
    masks[:, :, 0, 0] = [0, 1, 0]  # ... but object 1, always in slot 1
    masks[:2, :, 1, 1], masks[2:, :, 1, 1] = [0, 0, 1], [1, 0, 0]  # object 2: slot 2, then slot 0
    assert evaluation.slot_identity(ids, masks) == pytest.approx((1.0 + 0.5) / 2)
    mass = evaluation.slot_mass(ids, masks)  # each object's pixels summed per slot: 4 frames of one pixel each
    assert set(mass) == {1, 2}
    np.testing.assert_allclose(mass[1], [0, 4, 0])
    np.testing.assert_allclose(mass[2], [2, 0, 2])
    soft = masks.copy()
    soft[:, :, 0, 0] = [0.25, 0.5, 0.25]  # object 1 shared: its best slot holds half
    assert evaluation.slot_identity(ids, soft) == pytest.approx((0.5 + 0.5) / 2)
    assert np.isnan(evaluation.slot_identity(np.zeros_like(ids), masks))  # no object to score


def test_the_video_shows_frames_reconstructions_and_each_slots_share_side_by_side():
    frames = random_frames((2, 3, 8, 8, 3))
    recon = np.zeros((2, 3, 8, 8, 3), np.float32)
    masks = np.zeros((2, 3, 4, 8, 8), np.float32)
    masks[:, :, 1] = 1
    rgb = np.full((2, 3, 4, 8, 8, 3), 0.5, np.float32)  # white
    clip = evaluation.video(frames, recon, masks, rgb)
    assert clip.shape == (3, 16, 6 * 8, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[:, 8:16, :8], frames[1])
    assert np.all(clip[:, :, 8:16] == 128) and np.all(clip[:, :, 24:32] == 255) and np.all(clip[:, :, 16:24] == 0)
    assert evaluation.predicted_ids(masks).shape == (2, 3, 8, 8) and np.all(evaluation.predicted_ids(masks) == 1)



def test_the_attention_video_lights_the_weighted_slot_and_draws_each_weight_as_a_bar():
    frames = np.full((2, 8, 8, 3), 200, np.uint8)
    masks = np.zeros((2, 2, 8, 8), np.float32)
    masks[:, 0, :, :4], masks[:, 1, :, 4:] = 1, 1          # slot 0 holds the left half, slot 1 the right
    weights = np.array([[0.75, 0.25], [0.0, 1.0]], np.float32)
    clip = evaluation.attention_video(frames, masks, weights, bar=2)
    assert clip.shape == (2, 10, 4 * 8, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[:, :8, :8], frames)                 # the frame
    lit = clip[:, :8, 8:16, 0].astype(float)
    # Step 0: the left half at full light, the right at 0.2 + 0.8 x (0.25 / 0.75); step 1: only the right.
    np.testing.assert_allclose(lit[0, :, :4], 200)
    np.testing.assert_allclose(lit[0, :, 4:], 200 * (0.2 + 0.8 / 3), atol=0.5)
    np.testing.assert_allclose(lit[1, :, :4], 40)
    np.testing.assert_allclose(lit[1, :, 4:], 200)
    np.testing.assert_array_equal(clip[:, :8, 16:20], 200)                   # slot 0's pixels ...
    np.testing.assert_array_equal(clip[:, :8, 20:24], 0)                     # ... and nothing else
    bars = (clip[:, 8:, 16:, 0] == 255).reshape(2, 2, 2, 8).sum(-1)[:, 0]    # [step, slot]: lit bar pixels
    assert bars.tolist() == [[6, 2], [0, 8]]
    assert np.all(clip[:, 8:, :16] == 0)                                     # no bars under the frame panels

# --- The command line.

def write_episodes(directory, count=3, length=8, side=SIDE, segmentation=True):
    directory.mkdir(parents=True, exist_ok=True)
    for e in range(count):
        image = np.full((length, side, side, 3), 40, np.uint8)
        ids = np.zeros((length, side, side), np.uint8)
        for t in range(length):
            for k, colour in enumerate([(250, 0, 0), (0, 250, 0)]):
                row, col = (3 * t + 5 * k + e) % (side - 4), (2 * t + 7 * k) % (side - 4)
                image[t, row:row + 4, col:col + 4] = colour
                ids[t, row:row + 4, col:col + 4] = k + 1
        episode = {'image': image, 'reward': np.zeros(length, np.float32), 'is_first': np.arange(length) == 0,
                   'is_last': np.arange(length) == length - 1, 'is_terminal': np.zeros(length, bool),
                   'action': np.zeros((length, 2), np.float32)}
        if segmentation:
            episode['segmentation'] = ids
        episodes.write(directory, episode)
    return directory


def slots_run(*args, wait=True):
    command = [sys.executable, '-m', 'vsg.slots', '--configs', 'slots_debug', *map(str, args)]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def test_a_killed_run_resumes_its_step_count_and_logs_the_held_out_scores(tmp_path, capsys):
    from vsg.offline import loop
    from vsg.slots.__main__ import main
    directory = write_episodes(tmp_path / 'data')
    logdir = tmp_path / 'run'
    args = ['--slots.data', directory, '--logdir', logdir]
    first = slots_run(*args, '--slots.steps', 100_000, wait=False)
    try:
        deadline = time.monotonic() + 300
        while not (logdir / 'slots.npz').exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    killed_at = loop.updates(logdir, 'slots')
    assert killed_at is not None and killed_at >= 2, first.returncode

    # Resumed in this process, which has TensorFlow loaded already.
    main(['--configs', 'slots_debug', *map(str, args), '--slots.steps', str(killed_at + 2)])
    out = capsys.readouterr().out
    assert f'slots: resumed from {logdir / "slots.npz"} at update {killed_at}' in out
    assert f'update {killed_at + 2:,}/{killed_at + 2:,}' in out and 'ms_per_step' in out
    assert loop.updates(logdir, 'slots') == killed_at + 2
    records = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
    steps = [record['step'] for record in records if 'slots/slots_opt_loss' in record]
    assert steps == sorted(steps) and steps[-1] == killed_at + 2  # one count across both processes
    keys = set().union(*records)
    assert {'slots/slots_opt_loss', 'slots/ms_per_step', 'eval/mse', 'eval/fg_ari', 'eval/fg_ari_grid',
            'eval/slot_identity'} <= keys
    assert sum('eval/fg_ari_grid' in record for record in records) == 1  # once, at the start of the run
    assert (logdir / 'slots_eval.gif').read_bytes()[:6] == b'GIF89a' and list(logdir.glob('events.out.tfevents.*'))

    # The same logdir with another model, or with the seed's hold-out moved, is refused in one line.
    assert "slots.npz holds another slot model: num_slots=3 (wanted 4)" in main_error([*args, '--slots.num_slots', 4])
    assert 'other held-out episodes' in main_error([*args, '--seed', 1, '--slots.test_episodes', 2])


def main_error(argv):
    """The one-line exit message of vsg.slots run in this process."""
    from vsg.slots.__main__ import main
    with pytest.raises(SystemExit) as exit:
        main(['--configs', 'slots_debug', *map(str, argv)])
    message = str(exit.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def snapshot(directory):
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(directory.rglob('*'))}


@pytest.mark.parametrize('case, flags, message', [
    ('missing', [], 'does not exist'),
    ('empty', [], 'holds no episode .npz files'),
    ('corrupt', [], 'unreadable episode'),
    ('no_image', [], 'has no frames (a uint8 [H, W, C] key'),
    ('short', [], 'holds 0 episodes of at least slots.window=3 steps (3 shorter ones)'),
    ('other_size', [], "the slot model takes uint8 (16, 16, 3) frames (slots.resolution)"),
    ('good', ['--slots.nope', 1], "unknown flag '--slots.nope'"),
    ('good', ['--slots.num_slots', 0], 'slots.num_slots=0 must be a positive integer'),
    ('good', ['--slots.lr', 0], 'slots.lr=0.0 must be above 0'),
    ('good', ['--slots.tokens', 3], 'slots.tokens=3 must divide slots.resolution=16'),
    ('good', ['--slots.slot_size', 9], 'must be a multiple of slots.predictor_heads=2'),
    ('good', ['--slots.data', ''], '--slots.data is required'),
])
def test_bad_input_is_one_line_and_leaves_the_data_alone(tmp_path, case, flags, message):
    directory = tmp_path / 'data'
    if case == 'empty':
        directory.mkdir()
    elif case == 'corrupt':
        write_episodes(directory)
        (directory / '20260101T000000.000000-00000000000000000000000000000000-8.npz').write_bytes(b'PK\x03\x04 cut short')
    elif case == 'no_image':
        directory.mkdir()
        np.savez(directory / 'a-b-8.npz', action=np.zeros((8, 2)), reward=np.zeros(8))
    elif case == 'short':
        write_episodes(directory, length=2)
    elif case == 'other_size':
        write_episodes(directory, side=12)
    elif case == 'good':
        write_episodes(directory)
    before = snapshot(directory) if directory.exists() else None
    assert message in main_error(['--slots.data', directory, '--logdir', tmp_path / 'run', *flags])
    assert (snapshot(directory) if directory.exists() else None) == before
    assert not (tmp_path / 'run').exists()


def test_a_bad_input_from_the_command_line_is_one_line_without_a_traceback(tmp_path):
    result = slots_run('--slots.data', tmp_path / 'nowhere', '--logdir', tmp_path / 'run')
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: data directory {tmp_path / "nowhere"} does not exist (give a directory of episode .npz files, '
        'e.g. one written by vsg.collect)')


def test_windows_come_from_training_episodes_and_the_hold_out_is_seeded(tmp_path):
    frames = data_lib.load(write_episodes(tmp_path / 'data', count=5, length=6), window=3, resolution=SIDE)
    train, held = data_lib.split(5, 2, seed=0)
    assert len(held) == 2 and sorted([*train, *held]) == list(range(5))
    assert [a.tolist() for a in data_lib.split(5, 2, seed=0)] == [train.tolist(), held.tolist()]
    assert data_lib.split(2, 4, seed=0)[0].size == 1  # at least one episode trains
    (batch,) = next(data_lib.sampler(frames, train, 3, 64, np.random.default_rng(0)))
    assert batch.shape == (64, 3, SIDE, SIDE, 3)
    allowed = {tuple(frames.frames[s:s + 3, 0, 0, 0]) for s in frames.window_starts(train, 3)}
    for window in batch:
        assert tuple(window[:, 0, 0, 0]) in allowed
    starts = data_lib.eval_starts(frames, held, 3, 3)
    assert len(starts) == 3 and all(any(frames.starts[e] <= s <= frames.ends[e] - 3 for e in held) for s in starts)


def test_bench_reports_the_slot_train_step(monkeypatch, capsys):
    from vsg import bench
    rates = {'matmul_gflops': 100.0, 'conv_gflops': 50.0}  # the calibration itself is test_logging's
    monkeypatch.setattr(bench, 'calibrate', lambda: {dtype: rates for dtype in ('float32', 'bfloat16', 'float16')})
    report = bench.main(['--slots', '--configs', 'slots_debug'])
    assert report['model'] == 'slots' and report['batch'] == [2, 3] and report['sizes']['num_slots'] == 3
    for key in ('compile_s', 'train_step_ms', 'ms_per_frame', 'updates_per_s', 'peak_rss_mb'):
        assert report[key] > 0, key
    assert report['train_step_gflop'] >= 0 and report['achieved_fraction_of_matmul'] >= 0  # tiny: may round to 0
    # Both are rounded from the same unrounded time (to 0.1 and 0.01 ms): they may differ by 0.05 / 6 + 0.005.
    assert report['ms_per_frame'] == pytest.approx(report['train_step_ms'] / 6, abs=0.05 / 6 + 0.005 + 1e-9)
    assert 'flags' in report['cpu'] and json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
