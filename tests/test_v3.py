"""DreamerV3's recipe as options (the `v3` named config): symlog, two-hot heads, unimix, the split KL with
per-step free nats, LayerNorm nets and the critic's slow regulariser, against hand computations; then an
agent with all of them trains on a continuous and a discrete task with every core."""
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

import envs
from common import config as config_lib
from common import dists, nets
from vsg.agent import ActorCritic, Agent, example_batch
from vsg.cores.rssm import RSSM
from vsg.cores.vsg import SVSG

TwoHot = dists.TwoHot
STEP = (TwoHot.HIGH - TwoHot.LOW) / (TwoHot.BINS - 1)  # the bins' spacing in symlog space


def config(*flags):
    return config_lib.load(['--configs', 'debug', *flags])


# Symlog.

def test_symlog_and_symexp_are_inverses():
    x = np.array([-1e6, -123.4, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 42.0, 1e6], np.float32)
    np.testing.assert_allclose(nets.symexp(nets.symlog(x)).numpy(), x, rtol=1e-5)
    y = np.array([-15.0, -2.0, -1e-4, 0.0, 1e-4, 3.0, 15.0], np.float32)
    np.testing.assert_allclose(nets.symlog(nets.symexp(y)).numpy(), y, rtol=1e-5)
    assert nets.symlog(tf.constant(0.0)).numpy() == 0.0 and nets.symexp(tf.constant(0.0)).numpy() == 0.0
    np.testing.assert_allclose(nets.symexp(tf.constant([2.0, -2.0])).numpy(), [np.e ** 2 - 1, 1 - np.e ** 2], rtol=1e-6)


def test_symlog_mse_predicts_in_symlog_scale():
    dist = dists.head('symlog_mse', tf.constant([[2.0]]))
    np.testing.assert_allclose(dist.mean().numpy(), [np.e ** 2 - 1], rtol=1e-6)
    # -0.5 (2 - symlog(10))^2 by hand.
    np.testing.assert_allclose(dist.log_prob(tf.constant([10.0])).numpy(), [-0.5 * (2 - np.log(11)) ** 2], rtol=1e-6)


# Two-hot.

def test_twohot_splits_a_value_between_its_two_bins_linearly():
    x = TwoHot.LOW + 3.25 * STEP                           # a quarter of the way from bin 3 to bin 4
    weights = TwoHot.encode(tf.constant([x])).numpy()[0]
    assert np.flatnonzero(weights).tolist() == [3, 4]
    np.testing.assert_allclose(weights[[3, 4]], [0.75, 0.25], rtol=1e-4)
    assert weights.sum() == pytest.approx(1.0)
    beyond = TwoHot.encode(tf.constant([25.0, -30.0])).numpy()  # past the ends: all on the end bin
    np.testing.assert_array_equal(beyond[0], np.eye(TwoHot.BINS)[-1])
    np.testing.assert_array_equal(beyond[1], np.eye(TwoHot.BINS)[0])


def test_twohot_mean_of_an_encoding_round_trips_the_value():
    values = np.array([-1000.0, -3.7, 0.0, 0.5, 42.0, 1e5], np.float32)
    logits = tf.math.log(TwoHot.encode(nets.symlog(values)))   # -inf off the two bins
    np.testing.assert_allclose(TwoHot(logits).mean().numpy(), values, rtol=1e-4, atol=1e-5)


def test_twohot_log_prob_is_the_cross_entropy_with_the_encoding():
    logits = np.random.default_rng(0).normal(size=(1, TwoHot.BINS)).astype(np.float32)
    x = TwoHot.LOW + 200.4 * STEP                          # 0.6 on bin 200, 0.4 on bin 201
    log_softmax = logits[0] - np.log(np.exp(logits[0]).sum())
    expected = 0.6 * log_softmax[200] + 0.4 * log_softmax[201]
    value = nets.symexp(tf.constant([x]))
    np.testing.assert_allclose(TwoHot(tf.constant(logits)).log_prob(value).numpy(), [expected], rtol=1e-4)


# Unimix.

def test_unimix_floors_every_class_and_is_softmax_at_zero():
    logits = tf.constant(np.random.default_rng(0).normal(size=(4, 3, 5)) * 10, tf.float32)
    softmax = tf.nn.softmax(logits).numpy()
    probs = tf.nn.softmax(dists.unimix(logits, 0.1)).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    assert probs.min() >= 0.1 / 5 - 1e-7
    np.testing.assert_allclose(probs, 0.9 * softmax + 0.1 / 5, rtol=1e-5)
    np.testing.assert_array_equal(tf.nn.softmax(dists.unimix(logits, 0.0)).numpy(), softmax)


def test_rssm_unimix_floors_the_discrete_latents():
    core = RSSM(tf.random.Generator.from_seed(0), deter=4, hidden=4, stoch=3, discrete=4, act='elu', min_std=0.1,
                kl_balance=0.8, kl_free=0.0, unimix=0.5)
    embed, action = tf.random.normal([2, 5, 6], seed=1) * 100, tf.zeros([2, 5, 2])
    post, prior = core.observe(embed, action, tf.zeros([2, 5], tf.bool))
    for state in (post, prior):
        assert tf.nn.softmax(state['logits']).numpy().min() >= 0.5 / 4 - 1e-6


# The split KL.

def _discrete_core(free, dyn, rep):
    return RSSM(tf.random.Generator.from_seed(0), deter=2, hidden=2, stoch=1, discrete=2, act='elu', min_std=0.1,
                kl_balance=0.8, kl_free=free, kl_split=True, kl_dyn=dyn, kl_rep=rep)


# [B=2, T=1, S=1, K=2]: the first element's posterior is close to its prior (KL under the free nats), the
# second's far from it, so flooring per element (mean of [0.5, 2.99]) and after averaging (max(1.5, 0.5)) differ.
POST = np.array([[[[0.0, 0.0]]], [[[5.0, 0.0]]]], np.float32)
PRIOR = np.array([[[[0.2, 0.0]]], [[[-3.0, 0.0]]]], np.float32)
FREE = 0.5


def _softmax(x):
    return np.exp(x) / np.exp(x).sum(-1, keepdims=True)


def _hand_kl():
    p, q = _softmax(POST), _softmax(PRIOR)
    return (p * np.log(p / q)).sum((-2, -1))                   # [B, T]


def test_split_kl_floors_each_step_before_averaging():
    kl = _hand_kl()
    assert kl[0, 0] < FREE < kl[1, 0]
    core = _discrete_core(FREE, dyn=0.5, rep=0.1)
    loss, metrics = core.loss({'logits': tf.constant(POST)}, {'logits': tf.constant(PRIOR)})
    floored = np.maximum(kl, FREE).mean()
    np.testing.assert_allclose(loss.numpy(), 0.5 * floored + 0.1 * floored, rtol=1e-5)
    assert abs(floored - max(kl.mean(), FREE)) > 0.1             # averaging first would give another loss
    np.testing.assert_allclose(metrics['kl'].numpy(), kl.mean(), rtol=1e-5)


def test_split_kl_dyn_trains_only_the_prior_and_rep_only_the_posterior():
    p, q, kl = _softmax(POST), _softmax(PRIOR), _hand_kl()
    grads = {}
    for name, dyn, rep in (('dyn', 0.5, 0.0), ('rep', 0.0, 0.1)):
        post, prior = tf.Variable(POST), tf.Variable(PRIOR)
        with tf.GradientTape() as tape:
            loss, _ = _discrete_core(FREE, dyn, rep).loss({'logits': post}, {'logits': prior})
        grads[name] = [np.zeros_like(POST) if g is None else g.numpy() for g in tape.gradient(loss, [post, prior])]
    # d KL / d prior logits = q - p; d KL / d post logits = p (log p - log q - KL). Averaged over the 2
    # elements; the first, under the free nats, gets none.
    by_hand_prior = 0.5 * (q - p) / 2
    by_hand_post = 0.1 * p * (np.log(p) - np.log(q) - kl[..., None, None]) / 2
    by_hand_prior[0] = by_hand_post[0] = 0
    np.testing.assert_array_equal(grads['dyn'][0], 0)                # dyn: nothing to the posterior
    np.testing.assert_allclose(grads['dyn'][1], by_hand_prior, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(grads['rep'][1], 0)                # rep: nothing to the prior
    np.testing.assert_allclose(grads['rep'][0], by_hand_post, rtol=1e-4, atol=1e-7)
    assert np.abs(grads['dyn'][1][1]).min() > 1e-3 and np.abs(grads['rep'][0][1]).min() > 1e-4


def test_split_kl_of_svsg_floors_the_gate_masked_kl_per_step():
    core = SVSG(tf.random.Generator.from_seed(0), stoch=2, hidden=3, act='elu', min_std=0.1, kl_balance=0.8,
                kl_free=FREE, kl_split=True, kl_dyn=0.5, kl_rep=0.1, gate_prior=0.4, gate_scale=0.1, gate_free=0.0)
    # [B=3, T=1, S=2]; the gates pick which dimensions sampled anew and so count in the KL.
    gate = np.array([[[1.0, 1.0]], [[0.0, 0.0]], [[1.0, 0.0]]], np.float32)
    post = {'mean': tf.constant([[[2.0, 1.0]], [[3.0, 3.0]], [[0.5, 4.0]]]), 'std': tf.ones([3, 1, 2]),
            'gate': tf.constant(gate), 'gate_prob': tf.fill([3, 1, 2], 0.4)}
    prior = {'mean': tf.zeros([3, 1, 2]), 'std': tf.ones([3, 1, 2]), 'gate': tf.constant(gate),
             'gate_prob': tf.fill([3, 1, 2], 0.4)}
    masked = (gate * 0.5 * post['mean'].numpy() ** 2).sum(-1)   # unit stds: KL = (m_post - m_prior)^2 / 2
    np.testing.assert_allclose(masked[:, 0], [2.5, 0.0, 0.125])
    loss, _ = core.loss(post, prior)                            # the gate KL is 0: p equals the prior
    np.testing.assert_allclose(loss.numpy(), 0.6 * np.maximum(masked, FREE).mean(), rtol=1e-5)


# LayerNorm nets.

def test_layer_norm_mlp_drops_the_bias_and_normalises_before_the_activation():
    mlp = nets.MLP(2, 8, 'silu', 3, norm='layer')
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    out = mlp(tf.constant(x)).numpy()
    types = [type(layer).__name__ for layer in mlp._hidden]
    assert types == ['Dense', 'LayerNormalization', 'Activation'] * 2
    assert all(layer.bias is None for layer in mlp._hidden[::3]) and mlp._out.bias is not None
    h = x
    for dense in mlp._hidden[::3]:                               # LayerNorm starts with gain 1 and offset 0
        z = h @ dense.kernel.numpy()
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-3)
        h = z / (1 + np.exp(-z))                                 # silu
    np.testing.assert_allclose(out, h @ mlp._out.kernel.numpy() + mlp._out.bias.numpy(), rtol=1e-4, atol=1e-5)
    plain = nets.MLP(2, 8, 'silu', 3)
    plain(tf.constant(x))
    assert [type(layer).__name__ for layer in plain._hidden] == ['Dense', 'Dense']
    assert all(layer.bias is not None for layer in plain._hidden)


def test_layer_norm_encoder_and_decoder_normalise_their_convolutions():
    image = gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    encoder = nets.Encoder(['image'], [], 4, 'silu', 1, 8, False, norm='layer')
    decoder = nets.Decoder({'image': image}, ['image'], [], 4, 'silu', 1, 8, False, norm='layer')
    embed = encoder({'image': tf.zeros([2, 64, 64, 3], tf.uint8)})
    assert decoder(embed)['image'].shape == (2, 64, 64, 3)
    for layers in (encoder._convs, decoder._deconvs[1:-1]):          # the hidden layers, not the linear ends
        convs = [i for i, layer in enumerate(layers) if hasattr(layer, 'kernel')]
        assert convs and all(layers[i].bias is None for i in convs)
        assert all(type(layers[i + 1]).__name__ == 'LayerNormalization' for i in convs)


# The critic's slow regulariser and target.

def _actor_critic(*flags):
    ac = ActorCritic(2, False, config(*flags), tf.random.Generator.from_seed(0))
    feat = tf.constant(np.random.default_rng(0).normal(size=(3, 4, 6)), tf.float32)
    for net in (ac.actor, ac.critic, ac.target_critic):
        net(feat)
    return ac, feat


RETURNS = tf.constant([[1.0, -2.0, 0.5, 3.0]] * 3)
SLOW = tf.constant([[0.0, 1.0, -1.0, 2.0]] * 3)
WEIGHT = tf.constant([[1.0, 0.9, 0.8, 0.5]] * 3)


def test_critic_slow_regulariser_adds_the_nll_of_the_slow_values():
    ac, feat = _actor_critic('--critic.slow_reg', '0.5')
    pred = ac.critic(feat).numpy()[..., 0]
    by_hand = WEIGHT.numpy() * (0.5 * (pred - RETURNS.numpy()) ** 2 + 0.5 * 0.5 * (pred - SLOW.numpy()) ** 2)
    np.testing.assert_allclose(ac.critic_loss(feat, RETURNS, SLOW, WEIGHT).numpy(), by_hand.mean(), rtol=1e-5)


def test_twohot_critic_starts_at_zero_and_its_slow_term_is_a_cross_entropy():
    ac, feat = _actor_critic('--critic.dist', 'twohot', '--critic.slow_reg', '1.0')
    assert ac.critic(feat).shape[-1] == TwoHot.BINS
    np.testing.assert_allclose(ac.value(ac.critic, feat).mean().numpy(), 0.0, atol=1e-5)
    # Zero logits: every bin has probability 1/255, so each NLL is log 255 whatever the target.
    by_hand = (1 + 1.0) * np.log(TwoHot.BINS) * WEIGHT.numpy().mean()
    np.testing.assert_allclose(ac.critic_loss(feat, RETURNS, SLOW, WEIGHT).numpy(), by_hand, rtol=1e-5)


def test_slow_target_moves_its_fraction_of_the_way_on_update_steps():
    ac, _ = _actor_critic('--slow_target_fraction', '0.25', '--slow_target_update', '2')
    for i, v in enumerate(ac.critic.variables):
        v.assign(tf.fill(v.shape, float(i + 1)))
    before = [v.numpy() for v in ac.target_critic.variables]
    online = [v.numpy() for v in ac.critic.variables]
    ac._update_target(tf.constant(3, tf.int64))                   # not an update step: unchanged
    for target, old in zip(ac.target_critic.variables, before):
        np.testing.assert_array_equal(target.numpy(), old)
    ac._update_target(tf.constant(4, tf.int64))
    for target, old, new in zip(ac.target_critic.variables, before, online):
        np.testing.assert_allclose(target.numpy(), old + 0.25 * (new - old), rtol=1e-6)


# The v3 config end to end.

def test_v3_config_sets_the_recipe_and_defaults_keep_every_option_off():
    v3, base = config('v3'), config()
    recipe = lambda c: (c.reward_head.dist, c.critic.dist, c.kl.split, c.unimix.latents, c.unimix.actor,
                        c.slow_target_fraction, c.critic.slow_reg)
    assert recipe(v3) == ('twohot', 'twohot', True, 0.01, 0.01, 0.02, 1.0)
    assert recipe(base) == ('mse', 'mse', False, 0.0, 0.0, 1.0, 0.0)
    norms = lambda c: {c[f'{block}.norm'] for block in ('encoder', 'decoder', 'reward_head', 'cont_head', 'actor', 'critic')}
    assert norms(v3) == {'layer'} and norms(base) == {'none'}
    assert (v3.slow_target_update, v3.return_norm.on, v3.kl.free, v3.encoder.symlog_inputs) == (1, True, 1.0, True)


def _grid_spaces():
    env = envs.make('grid_collect', parallel=False, action_repeat=1, time_limit=12)
    spaces = env.obs_space, env.act_space
    env.close()
    return spaces


STATE = {'position': gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32),  # dmc cartpole's state vectors
         'velocity': gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)}


@pytest.mark.parametrize('core', ['rssm', 'vsg', 'svsg'])
@pytest.mark.parametrize('task', ['continuous_state', 'grid_collect'])
def test_v3_agent_trains_one_step(task, core):
    if task == 'grid_collect':
        obs_space, act_space = _grid_spaces()
    else:
        obs_space, act_space = STATE, {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}
    agent = Agent(obs_space, act_space, config('v3', '--core', core, '--svsg.stoch', '6', '--svsg.hidden', '5'))
    batch = example_batch(agent, obs_space, [agent.config.batch_size, agent.config.batch_length], np.random.default_rng(0))
    if agent.discrete:
        index = np.random.default_rng(1).integers(agent.act_dim, size=batch['reward'].shape)
        batch['action'] = np.eye(agent.act_dim, dtype=np.float32)[index]
    feat = agent.wm.core.get_feat(agent.wm.core.initial(2))
    np.testing.assert_allclose(agent.wm.reward(feat).mean().numpy(), 0.0, atol=1e-5)  # two-hot heads start at 0
    if agent.discrete:
        assert agent.ac.policy(feat).probs_parameter().numpy().min() >= 0.01 / agent.act_dim - 1e-7
    metrics = {key: value.numpy() for key, value in agent.train(batch).items()}
    assert {'kl_loss', 'reward_loss', 'critic_opt_loss', 'actor_opt_loss'} <= set(metrics)
    assert all(np.all(np.isfinite(value)) for value in metrics.values())
