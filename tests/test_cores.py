"""The swappable cores (RSSM, VSG, SVSG, slot): interface contract, gating arithmetic against hand
computations, losses, mixed precision, a tiny training run each, and scripts/dmc.sh's mapping. The slot
core's own behaviour is tested in test_slot_core.py."""
import os
import subprocess
from pathlib import Path

import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf

from common import config as config_lib
from vsg import cores
from vsg.cores.base import Core
from vsg.cores.cell import GatedCell, gated_update
from vsg.cores.rssm import kl_loss
from vsg.cores.vsg import gate_loss

ROOT = Path(__file__).resolve().parent.parent
B, T, E, A = 3, 5, 7, 2
TINY = ['--configs', 'debug', '--svsg.stoch', '6', '--svsg.hidden', '5']
VARIANT_FLAGS = {'rssm_gaussian': ['--rssm.discrete', '0'],  # DreamerV1's latents
                 'slot_gate': ['--slot.gate', 'true']}
CORES = [*cores.CORES, *VARIANT_FLAGS]  # every registered core, and variants of one by its config


def load_config(name, *flags):
    core = name.split('_')[0]
    return config_lib.load(TINY + ['--core', core, *VARIANT_FLAGS.get(name, []), *flags])


def make_core(name, *flags, rng=None):
    return cores.make(load_config(name, *flags), rng or tf.random.Generator.from_seed(1))


GATED = [name for name in CORES if 'gate' in make_core(name).state_shapes]  # cores with a binary update gate
IMAGE = {'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)}


def embed_size(name):
    """E for a core fed by the world model's encoder; a core with its own encoder reads that one's
    embedding (the slot core's flattened tokens)."""
    encoder = make_core(name).make_encoder(IMAGE, load_config(name))
    return E if encoder is None else encoder.embed_size


def inputs(seed=0, size=E):
    r = np.random.default_rng(seed)
    embed = tf.constant(r.normal(size=(B, T, size)), tf.float32)
    action = tf.constant(r.uniform(-1, 1, (B, T, A)), tf.float32)
    is_first = tf.constant(np.eye(B, T, dtype=bool))          # each row starts an episode at a different t
    return embed, action, is_first


def random_state(core, seed=0):
    """A state far from the initial one, so carrying it or not is visible."""
    r = np.random.default_rng(seed)
    return {k: tf.constant(r.uniform(0.5, 1.5, v.shape), tf.float32) for k, v in core.initial(B).items()}


def force_gates(core, is_open):
    """Zeroes the update gate's weights and sets its bias to ±1000: p = sigmoid(±1000 - 1) is exactly 1 or 0."""
    dense, size = core._cell._linear, core._cell.size
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    kernel[:, 2 * size:] = 0
    bias[2 * size:] = 1000 if is_open else -1000
    dense.kernel.assign(kernel)
    dense.bias.assign(bias)


# Interface contract, for every core.

@pytest.mark.parametrize('name', CORES)
def test_observe_imagine_and_loss_shapes(name):
    core = make_core(name)
    embed, action, is_first = inputs(size=embed_size(name))
    post, prior = core.observe(embed, action, is_first)
    assert set(post) == set(prior) == set(core.initial(B)) == set(core.state_shapes)
    assert all(post[key].shape[2:] == shape for key, shape in core.state_shapes.items())
    for state in (post, prior):
        assert all(v.dtype == tf.float32 and v.shape[:2] == (B, T) for v in state.values())
    assert core.get_feat(post).shape == (B, T, core.feat_size)
    imagined = core.imagine(action, {k: v[:, -1] for k, v in post.items()})
    assert core.get_feat(imagined).shape == (B, T, core.feat_size)
    loss, metrics = core.loss(post, prior)
    assert loss.shape == () and np.isfinite(loss.numpy())
    gated = name in GATED
    assert gated == ({'gate_kl', 'gate_open_mean', 'gate_open_std', 'gate_update_rate'} <= set(metrics))
    for key, value in metrics.items():  # scalars, or 1-D vectors (histograms) such as one rate per gate
        assert value.shape.rank <= 1, key
    if gated:
        assert metrics['gate_update_rate'].shape == (post['gate'].shape[-1],)
    if gated:
        assert set(np.unique(post['gate'].numpy())) <= {0.0, 1.0}
        np.testing.assert_array_equal(post['gate'].numpy(), prior['gate'].numpy())


def test_every_registered_core_implements_the_interface():
    assert GATED == ['vsg', 'svsg', 'slot_gate']
    for name in CORES:
        core = make_core(name)
        assert isinstance(core, Core), name
        assert core.sizes and all(isinstance(size, int) and size >= 0 for size in core.sizes.values()), name
        if not name.startswith('slot'):  # the slot core brings its own (test_slot_core.py)
            assert core.make_encoder({}, None) is None and core.make_decoder({}, None) is None  # the world model's


def test_a_core_missing_part_of_the_interface_cannot_be_built():
    class Incomplete(Core):
        feat_size = 1
        sizes = {}

        def initial(self, batch_size, training=False):
            return {}

    with pytest.raises(TypeError, match='abstract'):
        Incomplete()


def test_feature_sizes():
    assert make_core('rssm').feat_size == make_core('vsg').feat_size == 4 * 4 + 16
    assert make_core('svsg').feat_size == 6                   # z_t alone: no deterministic path


@pytest.mark.parametrize('name', CORES)
def test_is_first_resets_state_and_action(name):
    core = make_core(name)
    core.observe(*inputs(size=embed_size(name)))               # builds the layers
    embed, garbage, ones = tf.random.normal([B, embed_size(name)]), random_state(core), tf.ones([B], tf.bool)
    # Deterministic steps (sample=False) so the two paths can be compared exactly.
    from_garbage, _ = core.obs_step(garbage, tf.ones([B, A]) * 5, embed, ones, sample=False)
    from_initial, _ = core.obs_step(core.initial(B), tf.zeros([B, A]), embed, ones, sample=False)
    for key in from_initial:
        np.testing.assert_allclose(from_garbage[key].numpy(), from_initial[key].numpy(), rtol=1e-6, err_msg=key)
    carried, _ = core.obs_step(garbage, tf.ones([B, A]) * 5, embed, tf.zeros([B], tf.bool), sample=False)
    assert not np.allclose(core.get_feat(carried).numpy(), core.get_feat(from_initial).numpy())


@pytest.mark.parametrize('name', CORES)
def test_observe_equals_stepping_obs_step(name):
    rng = tf.random.Generator.from_seed(1)
    core = make_core(name, rng=rng)
    embed, action, is_first = inputs(size=embed_size(name))
    rng.reset_from_seed(7)
    post, _ = core.observe(embed, action, is_first)
    rng.reset_from_seed(7)
    state = core.initial(B, training=True)                     # as observe starts (a slot core samples it)
    for t in range(T):
        state, _ = core.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
        for key in state:
            np.testing.assert_allclose(post[key][:, t].numpy(), state[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


# Gating by hand.

@pytest.mark.parametrize('name', GATED)
def test_closed_gates_carry_the_state_unchanged(name):
    core = make_core(name)
    core.observe(*inputs(size=embed_size(name)))
    force_gates(core, is_open=False)
    prev = random_state(core)
    post, prior = core.obs_step(prev, tf.ones([B, A]), tf.random.normal([B, embed_size(name)]), tf.zeros([B], tf.bool))
    carried = {'vsg': ['deter'], 'svsg': ['stoch']}.get(name, ['deter', 'stoch'])
    for state in (post, prior):
        np.testing.assert_array_equal(state['gate'].numpy(), 0.0)
        for key in carried:
            np.testing.assert_array_equal(state[key].numpy(), prev[key].numpy())


def test_open_vsg_gates_give_the_candidate():
    core = make_core('vsg')
    core.observe(*inputs())
    force_gates(core, is_open=True)
    prev, action = random_state(core), tf.ones([B, A])
    prior = core.img_step(prev, action)
    # ĉ = tanh(sigmoid(r) * c) with [r, c, u] = W[x, h] + b, x = img_in([z_{t-1}, a_{t-1}]).
    x = core._img_in(tf.concat([core._flat_stoch(prev['stoch']), action], -1)).numpy()
    dense, size = core._cell._linear, core._cell.size
    parts = np.concatenate([x, prev['deter'].numpy()], -1) @ dense.kernel.numpy() + dense.bias.numpy()
    reset, cand = parts[:, :size], parts[:, size:2 * size]
    expected = np.tanh(cand / (1 + np.exp(-reset)))
    np.testing.assert_array_equal(prior['gate'].numpy(), 1.0)
    np.testing.assert_allclose(prior['deter'].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_open_svsg_gates_take_the_new_sample():
    core = make_core('svsg')
    core.observe(*inputs())
    force_gates(core, is_open=True)
    post, prior = core.obs_step(random_state(core), tf.ones([B, A]), tf.random.normal([B, E]),
                                tf.zeros([B], tf.bool), sample=False)
    for state in (post, prior):                                # sample=False: the new sample is the mean
        np.testing.assert_array_equal(state['stoch'].numpy(), state['mean'].numpy())


def test_eval_gates_take_their_mean_not_the_bernoulli_mode():
    core = make_core('vsg')
    post, _ = core.observe(*inputs())
    state = {k: v[:, 0] for k, v in post.items()}
    step = core.img_step(state, tf.ones([B, A]), sample=False)
    prob = step['gate_prob'].numpy()
    assert prob.mean() < 0.5  # σ(u - 1) is near 0.27 at initialisation: a 0.5 threshold shuts most gates
    np.testing.assert_array_equal(step['gate'].numpy(), prob)
    cand, _, _ = core._cell(core._img_in(tf.concat([core._flat_stoch(state['stoch']), tf.ones([B, A])], -1)), state['deter'])
    np.testing.assert_allclose(step['deter'].numpy(), prob * cand.numpy() + (1 - prob) * state['deter'].numpy(), rtol=1e-5, atol=1e-6)


def test_straight_through_gradient_reaches_the_gate_logits():
    cell = GatedCell(4, norm=False, rng=tf.random.Generator.from_seed(0))
    x, h = tf.random.normal([8, 3]), tf.random.normal([8, 4])
    cell(x, h)
    with tf.GradientTape() as tape:
        cand, gate, _ = cell(x, h)
        out = tf.reduce_sum(gated_update(gate, cand, h))
    assert set(np.unique(gate.numpy())) <= {0.0, 1.0}
    bias_grad = tape.gradient(out, cell._linear.bias).numpy()
    assert np.all(np.abs(bias_grad[2 * 4:]) > 0)             # the update logits' slice


# Losses by hand.

def bernoulli_kl_by_hand(p, q):
    with np.errstate(divide='ignore', invalid='ignore'):
        open_term = np.where(p > 0, p * np.log(p / q), 0.0)
        closed_term = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    return open_term + closed_term


@pytest.mark.parametrize('free', [0.0, 100.0])
def test_gate_kl_matches_the_bernoulli_formula(free):
    prior, scale = 0.3, 0.5
    core = make_core('vsg', '--gate.prior', str(prior), '--gate.scale', str(scale), '--gate.free', str(free))
    prob = np.array([[[0.1, 0.9, 0.0]], [[0.5, 1.0, 0.3]]], np.float32)   # [B=2, T=1, D=3], ends included
    gate = np.array([[[0, 1, 0]], [[1, 1, 0]]], np.float32)
    loss, metrics = core.gate_loss({'gate_prob': tf.constant(prob), 'gate': tf.constant(gate)})
    kl = bernoulli_kl_by_hand(prob.astype(np.float64), prior).sum(-1).mean()
    np.testing.assert_allclose(metrics['gate_kl'].numpy(), kl, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), scale * max(kl, free), rtol=1e-5)
    open_fraction = gate.mean(-1)
    np.testing.assert_allclose(metrics['gate_open_mean'].numpy(), open_fraction.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics['gate_open_std'].numpy(), open_fraction.std(), rtol=1e-6)
    np.testing.assert_allclose(metrics['gate_update_rate'].numpy(), [0.5, 1.0, 0.0])


@pytest.mark.parametrize('name', GATED)
def test_loss_is_the_kl_loss_plus_the_gate_term(name):
    core = make_core(name)
    post, prior = core.observe(*inputs(size=embed_size(name)))
    loss, _ = core.loss(post, prior)
    kl, gate = load_config(name).kl, load_config(name).gate
    kl_term, _ = kl_loss(core.kl, post, prior, kl.balance, kl.free, kl.split, kl.dyn, kl.rep)  # over this core's (masked) KL
    gate_term, _ = gate_loss(post, gate.prior, gate.scale, gate.free)
    np.testing.assert_allclose(loss.numpy(), kl_term.numpy() + gate_term.numpy(), rtol=1e-6)


def test_svsg_masked_kl_ignores_closed_dimensions():
    core = make_core('svsg')
    gate = tf.Variable([[1.0, 0.0]])
    post_mean = tf.Variable([[0.0, 3.0]])
    gates = {'gate': gate, 'gate_prob': tf.fill([1, 2], 0.5)}
    post = {'mean': post_mean, 'std': tf.constant([[1.0, 2.0]]), **gates}
    prior = {'mean': tf.constant([[1.0, -2.0]]), 'std': tf.ones([1, 2]), **gates}
    # Open dimension only: log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2 = 0 + 2/2 - 1/2.
    np.testing.assert_allclose(core.kl(post, prior).numpy(), [0.5], rtol=1e-6)
    with tf.GradientTape() as tape:
        loss, metrics = core.loss(post, prior)
    np.testing.assert_allclose(metrics['kl'].numpy(), 0.5, rtol=1e-6)
    mean_grad, gate_grad = [g.numpy() for g in tape.gradient(loss, [post_mean, gate])]
    assert mean_grad[0, 0] != 0 and mean_grad[0, 1] == 0
    # The mask passes its gradient on (paper's reference): d loss / d g_i = (1 - balance) KL_i, from the
    # posterior-side term (the prior-side term stops the posterior, mask included). KL_1 =
    # (2^2 + 5^2 - 1 - log 2^2) / 2 counts although its dimension is shut: opening it would cost that.
    kl = np.array([0.5, 0.5 * (4 + 25 - 1 - np.log(4))])
    np.testing.assert_allclose(gate_grad, [(1 - 0.8) * kl], rtol=1e-5)


# Precision, training, selection.

@pytest.mark.parametrize('name', GATED)
def test_mixed_bfloat16_forward_and_loss(name):
    keras.config.set_dtype_policy('mixed_bfloat16')
    try:
        core = make_core(name)
        post, prior = core.observe(*inputs(size=embed_size(name)))
        loss, metrics = core.loss(post, prior)
    finally:
        keras.config.set_dtype_policy('float32')
    assert all(v.dtype == tf.float32 for v in list(post.values()) + list(prior.values()))
    assert np.isfinite(loss.numpy()) and loss.dtype == tf.float32
    assert set(np.unique(post['gate'].numpy())) <= {0.0, 1.0}
    assert all(np.all(np.isfinite(v.numpy())) for v in metrics.values())


@pytest.mark.parametrize('name', CORES)
def test_agent_trains_two_steps(name):
    from vsg.agent import Agent
    config = load_config(name, '--jit', 'false', '--eval_sample', 'false')
    obs_space = {'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)}
    act_space = {'action': gymnasium.spaces.Box(-1, 1, (A,), np.float32)}
    agent = Agent(obs_space, act_space, config)
    r = np.random.default_rng(0)
    shape = (config.batch_size, config.batch_length)
    data = {
        'image': tf.constant(r.integers(0, 256, (*shape, 64, 64, 3)), tf.uint8),
        'action': tf.constant(r.uniform(-1, 1, (*shape, A)), tf.float32),
        'reward': tf.constant(r.normal(size=shape), tf.float32),
        'is_first': tf.constant(np.broadcast_to(np.arange(shape[1]) == 0, shape)),
        'is_terminal': tf.zeros(shape, tf.bool)}
    for _ in range(2):
        metrics = agent.train(data)
    assert all(np.all(np.isfinite(v.numpy())) for v in metrics.values())
    assert {'model_opt_loss', 'kl_loss', 'image_loss'} <= set(metrics)
    assert (name in GATED) == ('gate_open_mean' in metrics)
    obs = {'image': data['image'][:, 0], 'is_first': data['is_first'][:, 0]}
    action, _ = agent.policy(obs, agent.initial_policy_state(shape[0]), 'eval')
    assert action.shape == (shape[0], A)


def test_gate_prior_outside_the_open_unit_interval_is_a_config_error():
    for prior in ('0', '1', '1.5'):
        with pytest.raises(config_lib.ConfigError, match=r'gate.prior=.* must lie in \(0, 1\)'):
            config_lib.load(['--gate.prior', prior])


def script(name, *args):
    env = {**os.environ, 'PYTHON': 'echo', 'LOGDIR': '/runs'}   # echo prints the command it would run
    return subprocess.run(['bash', f'scripts/{name}', *args], cwd=ROOT, env=env, capture_output=True, text=True)


def dmc_sh(*args):
    return script('dmc.sh', *args)


def bbs_sh(*args):
    return script('bringbackshapes.sh', *args)


@pytest.mark.parametrize('model, core, discrete', [
    ('DreamerV1', 'rssm', 0), ('DreamerV2', 'rssm', 32), ('VSG', 'vsg', 32), ('SVSG', 'svsg', None)])
def test_dmc_sh_maps_models_onto_configs(model, core, discrete):
    result = dmc_sh('walker_walk', model, 'base', '0.3', '64', '7', '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    assert argv[:2] == ['-m', 'vsg.train']
    config = config_lib.load(argv[2:])
    assert config.core == core and config.task == 'dmc_walker_walk' and config.seed == 7
    assert config.steps == 250000 and config.batch_size == 4 and config.kl.free == 1.0
    assert config.logdir == f'/runs/dmc_walker_walk/{model}_base/seed_7'
    if core == 'svsg':
        assert config.svsg.stoch == config.svsg.hidden == 64
    else:
        assert config.rssm.deter == config.rssm.hidden == 64 and config.rssm.discrete == discrete
    if core != 'rssm':
        assert config.gate.prior == 0.3 and config.gate.scale == 0.1


@pytest.mark.parametrize('model, prior, fragment', [
    ('VSG2', '0.4', "MODEL 'VSG2' is not supported; choose DreamerV1, DreamerV2, VSG or SVSG"),
    ('VSG', '0', "GATE_PRIOR '0' must be a number in (0, 1)"),
    ('SVSG', '1', "GATE_PRIOR '1' must be a number in (0, 1)"),
    ('VSG', 'high', "GATE_PRIOR 'high' must be a number in (0, 1)"),
])
def test_dmc_sh_rejects_bad_arguments_in_one_line(model, prior, fragment):
    result = dmc_sh('walker_walk', model, 'base', prior, '64', '1')
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and not result.stdout
    assert len(lines) == 1 and lines[0].startswith(f'error: {fragment}')


@pytest.mark.parametrize('model, core', [('DreamerV2', 'rssm'), ('VSG', 'vsg'), ('SVSG', 'svsg')])
def test_bringbackshapes_sh_maps_every_argument(model, core):
    result = bbs_sh(model, 'base', 'dense', '1000', '3', '2', 'True', 'false', 'True', '100', '1.5', '0.3', '4',
                    '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    argv = result.stdout.split()
    config = config_lib.load(argv[2:])
    assert config.core == core and config.task == 'bbs_dense' and config.seed == 4 and config.batch_size == 4
    assert config.env.time_limit == 1000 and config.env.action_repeat == 4 and config.replay.prioritize_ends
    assert dict(config.env.bbs) == {
        'obs': 'pixels', 'segmentation': False, 'max_objects': 2, 'max_distractors': 3, 'variable_num_objects': True,
        'variable_num_distractors': False, 'variable_goal_position': True, 'agent_view_size': 100, 'arena_scale': 1.5, 'shaping': 0.0}
    assert config.logdir == f'/runs/bbs_dense/{model}_base/seed_4'
    if core != 'rssm':
        assert config.gate.prior == 0.3


@pytest.mark.parametrize('position, value, fragment', [
    (2, 'shaped', "ENV_TYPE 'shaped' must be sparse or dense"),
    (3, '3e3', "TL '3e3' must be a whole number"),
    (6, 'yes', "VARIABLE_NUM_OBJECTS 'yes' must be True or False"),
    (10, '0', "ARENA_SCALE '0' must be a number > 0"),
    (11, '2', "GATE_PRIOR '2' must be a number in (0, 1)"),
    (0, 'Dreamer', "MODEL 'Dreamer' is not supported"),
])
def test_bringbackshapes_sh_rejects_bad_arguments_in_one_line(position, value, fragment):
    args = ['VSG', 'base', 'sparse', '3000', '0', '5', 'False', 'False', 'False', '125', '1.0', '0.4', '1']
    args[position] = value
    result = bbs_sh(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and not result.stdout
    assert len(lines) == 1 and lines[0].startswith(f'error: {fragment}')
    assert bbs_sh(*args[:5]).returncode == 2   # too few arguments: the usage line
