"""The slot core (vsg/cores/slot.py): slot permutations, resets and the per-slot gate by hand, its own
encoder and decoder in the agent, a checkpoint that continues identically, a slot model pre-trained by
vsg.slots loaded frozen or fine-tuned, one-line refusals at the start of a run (as vsg.train builds the
agent), and a short training run through the command line. The contract every core shares is tested
in test_cores.py, which runs this core too."""
import json
import subprocess
import sys
import types
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint
from common import config as config_lib
from vsg import cores

ROOT = Path(__file__).resolve().parent.parent
B, A = 3, 2
SLOTS = 3  # debug's slots.num_slots
ORDER = [2, 0, 1]
DEBUG = ['--configs', 'debug', 'slot', '--jit', 'false']
PRETRAINED = ['--configs', 'debug', 'slot', 'slots_debug', '--jit', 'false']  # a tiny vsg.slots run's sizes: 16x16


def load_config(*flags, base=DEBUG):
    return config_lib.load([*base, *flags])


def make_core(*flags):
    config = load_config(*flags)
    core = cores.make(config, tf.random.Generator.from_seed(1))
    encoder = core.make_encoder(image_space(), config)
    return core, encoder


def image_space(side=64):
    return {'image': gymnasium.spaces.Box(0, 255, (side, side, 3), np.uint8)}


def frames(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).integers(0, 256, shape), tf.uint8)


def a_state(core, encoder, seed=0):
    """A posterior a few steps into an episode: distinct slots, not the initial ones."""
    r = np.random.default_rng(seed)
    embed = encoder({'image': frames((B, 4, 64, 64, 3), seed)})
    action = tf.constant(r.uniform(-1, 1, (B, 4, A)), tf.float32)
    post, _ = core.observe(embed, action, tf.constant(np.broadcast_to(np.arange(4) == 0, (B, 4))), sample=False)
    return {key: value[:, -1] for key, value in post.items()}


def permuted(state):
    return {key: tf.gather(value, ORDER, axis=1) for key, value in state.items()}


@pytest.mark.parametrize('gate', ['false', 'true'])
def test_permuting_the_slots_permutes_the_next_slots_and_leaves_the_feature_unchanged(gate):
    core, encoder = make_core('--slot.gate', gate, '--slots.carry', 'true')  # the posterior starts from the prior
    state = a_state(core, encoder)
    action = tf.constant([[0.5, -0.3]] * B)
    embed = encoder({'image': frames((B, 64, 64, 3), seed=1)})
    not_first = tf.zeros([B], tf.bool)
    prior = core.img_step(state, action, sample=False)
    post, _ = core.obs_step(state, action, embed, not_first, sample=False)
    prior_of_permuted = core.img_step(permuted(state), action, sample=False)
    post_of_permuted, _ = core.obs_step(permuted(state), action, embed, not_first, sample=False)
    assert set(prior) == set(core.state_shapes)
    for expected, got in ((prior, prior_of_permuted), (post, post_of_permuted)):
        for key in expected:
            np.testing.assert_allclose(got[key].numpy(), permuted(expected)[key].numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=key)
    # The slots differ from one another, so the check above is not vacuous.
    assert np.abs(post['stoch'].numpy()[:, 0] - post['stoch'].numpy()[:, 1]).max() > 1e-2
    for before in (state, prior, post):
        np.testing.assert_allclose(core.get_feat(permuted(before)).numpy(), core.get_feat(before).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_is_first_restarts_a_row_from_the_initial_slots_and_only_that_row():
    core, encoder = make_core('--slots.carry', 'true')
    state = a_state(core, encoder)
    embed = encoder({'image': frames((B, 64, 64, 3), seed=2)})
    is_first = tf.constant([True, False, False])
    mixed, _ = core.obs_step(state, tf.ones([B, A]), embed, is_first, sample=False)
    fresh, _ = core.obs_step(core.initial(B), tf.zeros([B, A]), embed, tf.ones([B], tf.bool), sample=False)
    carried, _ = core.obs_step(state, tf.ones([B, A]), embed, tf.zeros([B], tf.bool), sample=False)
    for key in fresh:
        np.testing.assert_allclose(mixed[key][0].numpy(), fresh[key][0].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
        np.testing.assert_allclose(mixed[key][1:].numpy(), carried[key][1:].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    assert not np.allclose(mixed['stoch'][1].numpy(), fresh['stoch'][1].numpy())
    # The initial slots are the learned means at inference and drawn around them in training.
    means = core.slot_init.mean.numpy()
    np.testing.assert_array_equal(core.initial(2)['stoch'].numpy(), np.stack([means, means]))
    drawn = core.initial(2, training=True)['stoch'].numpy()
    assert not np.allclose(drawn, means) and np.abs(drawn - means).max() < 1.0  # init_std 0.1


def test_without_carry_every_frame_is_found_from_the_learned_slots_as_the_slot_model_finds_it():
    core, encoder = make_core()  # slots.carry false: the slot model's default
    assert not core._sizes.carry
    state, other = a_state(core, encoder, seed=0), a_state(core, encoder, seed=5)
    image = frames((B, 64, 64, 3), seed=4)
    embed = encoder({'image': image})
    post, prior = core.obs_step(state, tf.ones([B, A]), embed, tf.zeros([B], tf.bool), sample=False)
    post_other, _ = core.obs_step(other, tf.ones([B, A]), embed, tf.zeros([B], tf.bool), sample=False)
    # The inferred slots are the slot model's own for this frame: its learned means, iters_first iterations.
    tokens = core.slot_encoder(image)
    own = core.slot_attention(core.initial(B)['stoch'], tokens, iterations=core._sizes.iters_first)
    np.testing.assert_allclose(post['mean'].numpy(), own.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post_other['mean'].numpy(), own.numpy(), rtol=1e-5, atol=1e-6)  # whatever came before
    assert not np.allclose(prior['mean'].numpy(), post['mean'].numpy())  # the prior still predicts them from the state


def test_a_shut_slot_carries_its_state_exactly_and_costs_no_kl():
    core, encoder = make_core('--slot.gate', 'true')
    state = a_state(core, encoder)
    # The update gate reads only h's first dimension, steeply: open where it is positive, shut elsewhere.
    dense, size = core._cell._linear, core._cell.size
    kernel, bias = np.zeros_like(dense.kernel.numpy()), dense.bias.numpy()
    kernel[:, :2 * size] = dense.kernel.numpy()[:, :2 * size]
    kernel[size, 2 * size] = 1000.0  # inputs are [x, h]: row `size` is h's first dimension
    bias[2 * size] = 0.0
    dense.kernel.assign(kernel)
    dense.bias.assign(bias)
    deter = state['deter'].numpy()
    deter[:, :, 0] = [1.0, -1.0, -1.0]  # slot 0 opens, slots 1 and 2 stay shut
    state['deter'] = tf.constant(deter)
    embed = encoder({'image': frames((B, 64, 64, 3), seed=3)})
    post, prior = core.obs_step(state, tf.ones([B, A]), embed, tf.zeros([B], tf.bool))  # sampled, binary gates
    for step in (post, prior):
        np.testing.assert_array_equal(step['gate'].numpy(), [[1.0, 0.0, 0.0]] * B)
        for key in ('deter', 'stoch'):
            np.testing.assert_array_equal(step[key].numpy()[:, 1:], state[key].numpy()[:, 1:], err_msg=key)
            assert not np.allclose(step[key].numpy()[:, 0], state[key].numpy()[:, 0]), key
    from vsg.cores.rssm import gaussian_kl
    open_slot = tf.reduce_sum(gaussian_kl(post, prior), -1)[:, 0]
    np.testing.assert_allclose(core.kl(post, prior).numpy(), open_slot.numpy(), rtol=1e-6)


def test_the_pooling_weights_are_logged_per_slot_and_the_decoder_reads_every_slot():
    core, encoder = make_core()
    embed = encoder({'image': frames((B, 4, 64, 64, 3))})
    post, prior = core.observe(embed, tf.zeros([B, 4, A]), tf.zeros([B, 4], tf.bool))
    _, metrics = core.loss(post, prior)
    weights = metrics['pool_weight'].numpy()
    assert weights.shape == (SLOTS,) and np.isclose(weights.sum(), 1.0, atol=1e-5)
    assert 0 <= metrics['pool_entropy'].numpy() <= np.log(SLOTS) + 1e-5
    decoder = core.make_decoder(image_space(), load_config())
    assert core.decoder_input(post).shape == (B, 4, SLOTS, 16)
    image = decoder(core.decoder_input(post))['image']
    assert image.shape == (B, 4, 64, 64, 3)
    # The frame is each slot's RGB weighted by its mask (the slot model's composition).
    recon, masks, rgb = core.slot_decoder.decode(post['stoch'])
    np.testing.assert_allclose(image.numpy(), recon.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masks.numpy().sum(2), 1.0, atol=1e-5)
    np.testing.assert_allclose(image.numpy(), (masks[..., None] * rgb).numpy().sum(2), atol=0.05)  # bilinear
    # What vsg.evaluate --attention shows: the pooling's weights (mean over heads) and the slots' masks.
    weights, masks_shown = core.attention(post)
    assert weights.shape == (B, 4, SLOTS) and masks_shown.shape == (B, 4, SLOTS, 64, 64)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(masks_shown.numpy(), masks.numpy())
    np.testing.assert_allclose(weights.numpy().mean((0, 1)), metrics['pool_weight'].numpy(), atol=1e-5)


# The agent.

def make_agent(*flags, base=DEBUG, side=64):
    from vsg.agent import Agent
    return Agent(image_space(side), {'action': gymnasium.spaces.Box(-1, 1, (A,), np.float32)},
                 load_config(*flags, base=base))


def batch(agent, side=64, seed=0):
    from vsg.agent import example_batch
    data = example_batch(agent, image_space(side), [agent.config.batch_size, agent.config.batch_length],
                         np.random.default_rng(seed))
    data['is_first'][:, 0] = True
    return {key: tf.constant(value) for key, value in data.items()}


def test_a_reloaded_checkpoint_continues_identically(tmp_path):
    agent = make_agent('--slot.gate', 'true')
    data, later = batch(agent), batch(agent, seed=1)
    agent.train(data)
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, agent.variables, {'step': 1})
    went_on = agent.train(later)
    checkpoint.load(path, agent.variables)
    again = agent.train(later)  # weights, optimizer state and the generator's draws as before
    assert {'pool_weight', 'pool_entropy', 'gate_update_rate', 'image_loss'} <= set(went_on)
    for key in went_on:
        np.testing.assert_array_equal(again[key].numpy(), went_on[key].numpy(), err_msg=key)
    # An agent built afresh (other initial weights and generator) acts as the saved one once it loads it.
    fresh = make_agent('--slot.gate', 'true', '--seed', '5')
    obs = {'image': data['image'][:, 0], 'is_first': data['is_first'][:, 0]}
    actions = []
    for acting in (agent, fresh):
        checkpoint.load(path, acting.variables)
        actions.append(acting.policy(obs, acting.initial_policy_state(2), 'train')[0].numpy())
    np.testing.assert_array_equal(actions[1], actions[0])


def test_the_image_loss_decodes_every_nth_step_and_the_open_loop_video_shows_each_slots_share():
    agent = make_agent()  # the `slot` config decodes every 4th step
    data = batch(agent)
    embed = agent.wm.encoder(data)
    post, _ = agent.wm.core.observe(embed, data['action'], data['is_first'])
    inputs = agent.wm.core.decoder_input(post)
    loss = agent.wm.decoder_losses(inputs, data)['image']
    decoded = agent.wm.decoder(inputs[:, ::4])['image']
    target = tf.cast(data['image'][:, ::4], tf.float32) / 255 - 0.5
    expected = 0.5 * np.mean(np.sum((decoded - target).numpy() ** 2, (2, 3, 4)))  # a unit Gaussian's NLL, no constant
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    video = agent.video_prediction(data).numpy()  # truth | model | error | each slot's share, 2 sequences wide
    assert video.dtype == np.uint8 and video.shape == (agent.config.batch_length, (3 + SLOTS) * 64, 2 * 64, 3)
    # The masks sum to 1, so the shares add up to the model's frame (up to rounding each panel down, and the
    # frame being upsampled after it is composed).
    shares = video[:, 3 * 64:].reshape(-1, SLOTS, 64, 2 * 64, 3).astype(int).sum(1)
    assert np.abs(shares - video[:, 64:2 * 64].astype(int)).mean() < 2


# A slot model pre-trained by vsg.slots.

@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """The logdir of a tiny vsg.slots run (slots_debug: 16x16 frames, 3 slots of 8, 4 updates)."""
    from test_slots import write_episodes
    from vsg.slots.__main__ import main
    root = tmp_path_factory.mktemp('slots')
    data = write_episodes(root / 'data')
    main(['--configs', 'slots_debug', '--slots.data', str(data), '--logdir', str(root / 'run')])
    return root / 'run'


def slot_model_weights(agent):
    core = agent.wm.core
    return {variable.path: variable.numpy() for part in (core.slot_encoder, core.slot_attention, core.slot_init,
                                                         core.slot_decoder) for variable in part.trainable_weights
            + part.non_trainable_weights if 'seed_generator' not in variable.path}


@pytest.mark.parametrize('finetune', [False, True])
def test_a_pretrained_slot_model_loads_and_stays_frozen_or_is_fine_tuned(pretrained, finetune):
    from vsg import slots
    agent = make_agent('--slot.pretrained', str(pretrained), '--slot.finetune', str(finetune), base=PRETRAINED, side=16)
    model, _ = slots.load(pretrained)
    saved = {variable.path: variable.numpy() for variable in model.variables}
    before = slot_model_weights(agent)
    assert before and all(np.array_equal(value, saved[path]) for path, value in before.items())
    data = batch(agent, side=16)
    np.testing.assert_allclose(agent.wm.encoder(data).numpy().reshape(-1, 16, 4),
                               model.encoder(tf.reshape(data['image'], [-1, 16, 16, 3])).numpy(), rtol=1e-5, atol=1e-6)
    trainable = {variable.path for variable in agent.wm.trainable_variables}
    assert all((path in trainable) == finetune for path in before)
    prior_before = agent.wm.core._prior.trainable_weights[0].numpy()
    agent.train_world_model(data)  # the world model's update alone: the slot model is part of it
    after = slot_model_weights(agent)
    changed = [path for path in before if not np.array_equal(after[path], before[path])]
    assert (len(changed) > len(before) // 2) if finetune else not changed, changed
    assert not np.array_equal(agent.wm.core._prior.trainable_weights[0].numpy(), prior_before)  # the core learns


def error_of(flags, obs_space=None, base=PRETRAINED):
    """The one-line exit message of building the agent as vsg.train does at its start."""
    from vsg import build
    env = types.SimpleNamespace(obs_space=obs_space or image_space(16),
                                act_space={'action': gymnasium.spaces.Box(-1, 1, (A,), np.float32)})
    with pytest.raises(SystemExit) as exit:
        build.make_agent(load_config(*flags, base=base), env)
    message = str(exit.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_a_pretrained_model_of_other_sizes_or_none_at_all_is_refused_in_one_line(pretrained, tmp_path):
    message = error_of(['--slot.pretrained', str(pretrained), '--slots.num_slots', '4', '--slots.slot_size', '16'])
    assert 'slots.npz holds another slot model: num_slots=3 (wanted 4), slot_size=8 (wanted 16)' in message
    message = error_of(['--slot.pretrained', str(pretrained), '--slots.resolution', '64', '--slots.decoder_size', '16'],
                       image_space(64))
    assert 'resolution=16 (wanted 64)' in message
    assert 'does not exist' in error_of(['--slot.pretrained', str(tmp_path / 'nothing.npz')])


def vector(size):
    return gymnasium.spaces.Box(-np.inf, np.inf, (size,), np.float32)


@pytest.mark.parametrize('flags, obs_space, fragment', [
    ([], {'position': vector(3), 'velocity': vector(2)},  # dmc_cartpole_balance with --env.dmc.obs state
     'the slot core reads an image and the env observes none (position (3,), velocity (2,)); observe pixels: '
     '--env.dmc.obs pixels or both'),
    ([], image_space(64), "observation 'image' has shape (64, 64, 3); the slot core takes 16x16 frames"),
    (['--slot.heads', '3'], None, 'slot.heads=3 must divide slots.slot_size=8'),
    (['--slots.tokens', '3'], None, 'slots.tokens=3 must divide slots.resolution=16'),
    (['--slot.finetune', 'false'], None, 'slot.finetune=false freezes a pre-trained slot model'),
])
def test_bad_settings_are_refused_in_one_line(flags, obs_space, fragment):
    assert fragment in error_of(['--task', 'dmc_cartpole_balance', *flags], obs_space)


def test_bad_values_are_config_errors():
    for flag, value, fragment in [('--slot.hidden', '0', 'slot.hidden=0 must be a positive integer'),
                                  ('--decoder.every', '0', 'decoder.every=0 must be a positive integer')]:
        with pytest.raises(config_lib.ConfigError, match=fragment):
            load_config(flag, value)


# The command line.

def test_training_from_pixels_runs_end_to_end(tmp_path):
    train = [sys.executable, '-m', 'vsg.train', *DEBUG, '--task', 'dmc_cartpole_balance', '--steps', '120']
    result = subprocess.run([*train, '--logdir', str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    with np.load(tmp_path / 'checkpoint.npz') as saved:
        assert int(saved['counters/step']) >= 120
    records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    keys = set().union(*records)
    assert {'train/image_loss', 'train/kl', 'train/pool_entropy', 'eval/return'} <= keys
    # Where the agent looks in an eval episode: frame | lit frame | each slot, a weight bar below each.
    gif = tmp_path / 'attention.gif'
    evaluated = subprocess.run([sys.executable, '-m', 'vsg.evaluate', '--logdir', str(tmp_path), '--episodes', '1',
                                '--attention', str(gif)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    from PIL import Image
    env = load_config('--task', 'dmc_cartpole_balance').env
    with Image.open(gif) as image:
        # The whole first episode at 10 frames/s (the GIF merges repeated frames, adding their durations).
        durations = [image.seek(i) or image.info['duration'] for i in range(image.n_frames)]
        assert sum(durations) == 100 * (env.time_limit // env.action_repeat + 1)
        assert image.size == (2 * (2 + SLOTS) * 64, 2 * (64 + 4))  # write_gif doubles the size
