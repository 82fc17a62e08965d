"""Loss arithmetic against hand computations: λ-returns, return normalisation, KL balancing with free nats."""
import numpy as np
import pytest
import tensorflow as tf

from vsg.agent import ReturnScale, lambda_return, percentiles
from vsg.cores.rssm import RSSM


def test_lambda_return_matches_hand_computation():
    reward = np.array([1.0, 2.0, 3.0], np.float32)
    next_value = np.array([10.0, 20.0, 30.0], np.float32)   # V(s_1), V(s_2), V(s_3)
    discount = np.array([0.9, 0.8, 0.5], np.float32)
    lam = 0.5
    r2 = 3 + 0.5 * 30                                        # the last target bootstraps fully
    r1 = 2 + 0.8 * ((1 - lam) * 20 + lam * r2)
    r0 = 1 + 0.9 * ((1 - lam) * 10 + lam * r1)
    got = lambda_return(tf.constant(reward), tf.constant(next_value), tf.constant(discount), lam)
    np.testing.assert_allclose(got.numpy(), [r0, r1, r2], rtol=1e-6)


def test_lambda_return_limits_are_td0_and_monte_carlo():
    reward = tf.constant([[1.0], [1.0], [1.0]])
    value = tf.constant([[5.0], [5.0], [5.0]])
    discount = tf.constant([[0.5], [0.5], [0.5]])
    td0 = lambda_return(reward, value, discount, 0.0)
    np.testing.assert_allclose(td0.numpy()[:, 0], [3.5, 3.5, 3.5])
    mc = lambda_return(reward, value, discount, 1.0)
    np.testing.assert_allclose(mc.numpy()[:, 0], [1 + 0.5 * (1 + 0.5 * 3.5), 1 + 0.5 * 3.5, 3.5])


def test_percentiles_match_numpy_lower():
    x = np.random.default_rng(0).normal(size=(15, 7)).astype(np.float32)
    got = [p.numpy() for p in percentiles(tf.constant(x), (5, 95))]
    np.testing.assert_array_equal(got, np.percentile(x, [5, 95], method='lower'))


def test_return_scale_is_an_ema_of_the_percentile_range_floored_at_one():
    scale = ReturnScale(decay=0.9)
    returns = tf.constant(np.arange(101, dtype=np.float32))      # 5th percentile 5, 95th 95
    first = scale(returns).numpy()
    assert (scale.low.numpy(), scale.high.numpy()) == pytest.approx((0.5, 9.5))
    assert first == pytest.approx(9.0)                           # EMA from zero: 0.1 * (95 - 5)
    second = scale(returns).numpy()
    assert second == pytest.approx(0.19 * 90)
    small = ReturnScale(decay=0.0)
    assert small(tf.constant([0.1, 0.2, 0.3])).numpy() == 1.0    # a range under 1 is not blown up


def test_return_norm_divides_the_return_part_of_the_actor_gradient():
    """The actor loss is -mean(w (R / S + η H)); with η = 0 and the same imagined rollout (same random
    state), normalising by S scales the whole actor gradient by 1 / S."""
    import gymnasium
    from common import config as config_lib
    from vsg.agent import Agent
    config = config_lib.load(['--configs', 'debug', '--return_norm.on', 'True', '--return_norm.decay', '0',
                              '--actor_ent', '0'])
    agent = Agent({'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)},
                  {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}, config)
    start = agent.wm.core.initial(4)
    start['deter'] = tf.random.stateless_normal(start['deter'].shape, [0, 1]) * 3
    rng_state = agent.rng.state.numpy()
    grads = {}

    def actor_grads(normalise):
        agent.rng.state.assign(rng_state)
        norm = agent.ac.return_scale
        agent.ac.return_scale = norm if normalise else None
        def capture(tape, loss, variables):
            grads[normalise] = [g.numpy() for g in tape.gradient(loss, variables)]
            return {}
        metrics = agent.ac.train(agent.wm, start, capture, lambda *args: {}, agent.updates)
        agent.ac.return_scale = norm
        return float(metrics['return_scale'])

    assert actor_grads(False) == 1.0
    scale = actor_grads(True)
    assert scale > 1.5  # the test would be empty at the floor
    assert scale == pytest.approx(max(1.0, agent.ac.return_scale.high.numpy() - agent.ac.return_scale.low.numpy()))
    # Dynamics gradients reach the actor through its sampled actions (not only through the entropy).
    assert max(np.abs(g).max() for g in grads[False]) > 1e-3
    for normed, plain in zip(grads[True], grads[False]):
        np.testing.assert_allclose(normed * scale, plain, rtol=1e-4, atol=1e-8)


def _gaussian_rssm(balance, free):
    rng = tf.random.Generator.from_seed(0)
    return RSSM(rng, deter=4, hidden=4, stoch=2, discrete=0, act='elu', min_std=0.1,
                kl_balance=balance, kl_free=free)


def _state(mean, std):
    return {'mean': tf.constant(mean, tf.float32), 'std': tf.constant(std, tf.float32)}


def test_gaussian_kl_matches_closed_form():
    core = _gaussian_rssm(0.8, 0.0)
    post, prior = _state([[0.0, 1.0]], [[1.0, 2.0]]), _state([[1.0, 1.0]], [[1.0, 1.0]])
    # Per dim: log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2.
    expected = (0 + (1 + 1) / 2 - 0.5) + (np.log(1 / 2) + 4 / 2 - 0.5)
    np.testing.assert_allclose(core.kl(post, prior).numpy(), [expected], rtol=1e-6)


@pytest.mark.parametrize('free', [0.0, 1.0, 100.0])
def test_kl_balancing_and_free_nats(free):
    balance = 0.8
    core = _gaussian_rssm(balance, free)
    post = _state([[[0.0, 1.0]], [[2.0, 0.0]]], [[[1.0, 2.0]], [[1.0, 1.0]]])     # [B=2, T=1, S=2]
    prior = _state([[[1.0, 1.0]], [[0.0, 0.0]]], [[[1.0, 1.0]], [[1.0, 1.0]]])
    kl_values = core.kl(post, prior).numpy()
    mean_kl = kl_values.mean()                                 # averaged before the free-nats floor
    loss, metrics = core.loss(post, prior)
    expected = (1 - balance) * max(mean_kl, free) + balance * max(mean_kl, free)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(metrics['kl'].numpy(), mean_kl, rtol=1e-6)


def test_kl_balance_splits_gradients_between_posterior_and_prior():
    balance, core = 0.8, _gaussian_rssm(0.8, 0.0)
    post_mean, prior_mean = tf.Variable([[1.0]]), tf.Variable([[0.0]])
    with tf.GradientTape() as tape:
        loss, _ = core.loss({'mean': post_mean, 'std': tf.ones([1, 1])}, {'mean': prior_mean, 'std': tf.ones([1, 1])})
    g_post, g_prior = tape.gradient(loss, [post_mean, prior_mean])
    # KL = (m_post - m_prior)^2 / 2, so dKL/dm_post = 1 and dKL/dm_prior = -1, scaled by each side's share.
    np.testing.assert_allclose(g_post.numpy(), [[1 - balance]], rtol=1e-6)
    np.testing.assert_allclose(g_prior.numpy(), [[-balance]], rtol=1e-6)


def test_actor_samples_one_rounding_step_outside_the_bounds_are_moved_inside(monkeypatch):
    import tensorflow_probability as tfp
    from common import dists
    # TFP's sampler returning the float32 neighbours of the bounds, as it rarely does in long runs.
    outside = tf.constant([[[np.nextafter(np.float32(1), np.float32(2))], [np.nextafter(np.float32(-1), np.float32(-2))], [0.3]]])
    monkeypatch.setattr(tfp.distributions.TruncatedNormal, '_sample_n', lambda self, n, seed=None: outside)
    policy = dists.trunc_normal(tf.zeros([3, 1]), tf.zeros([3, 1]), 0.1)
    assert np.isinf(policy.distribution.log_prob(outside[0]).numpy()[:2]).all()  # what would have happened
    sample = policy.sample()
    assert np.all(np.abs(sample.numpy()) < 1) and sample.numpy()[2, 0] == pytest.approx(0.3)
    assert np.all(np.isfinite(policy.log_prob(sample).numpy()))


def test_actor_samples_carry_the_implicit_reparameterisation_gradient():
    import tensorflow_probability as tfp
    from common import dists
    # Means from the middle to the bounds, where the sample can no longer follow the mean.
    logits = np.array([[-3.0], [-1.0], [0.0], [0.7], [2.0], [3.0]], np.float32)
    mean, std_logits = tf.Variable(logits), tf.Variable(np.full_like(logits, -2.0))
    with tf.GradientTape(persistent=True) as tape:
        policy = dists.trunc_normal(mean, std_logits, 0.1)
        sample = policy.sample(seed=(1, 2))
        total = tf.reduce_sum(sample)
    # Independently, by the implicit function theorem on the CDF F(x; loc, scale) = u at the drawn x:
    # d x / d theta = -(d F / d theta) / p(x).
    loc, scale = tf.Variable(policy.distribution.loc), tf.Variable(policy.distribution.scale)
    x = tf.constant(sample)
    with tf.GradientTape() as cdf_tape:
        cdf = tfp.distributions.TruncatedNormal(loc, scale, -1.0, 1.0).cdf(x)
    d_cdf_loc, d_cdf_scale = cdf_tape.gradient(cdf, [loc, scale])
    density = tfp.distributions.TruncatedNormal(loc, scale, -1.0, 1.0).prob(x)
    d_loc, d_scale = -d_cdf_loc / density, -d_cdf_scale / density
    d_tanh = tape.gradient(policy.distribution.loc, mean)
    d_std = tape.gradient(policy.distribution.scale, std_logits)
    np.testing.assert_allclose(tape.gradient(total, mean).numpy(), (d_loc * d_tanh).numpy(), rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(tape.gradient(total, std_logits).numpy(), (d_scale * d_std).numpy(), rtol=2e-3, atol=1e-5)
    # Near the upper bound the sample follows the mean only partly (TensorFlow's own rule says 1).
    assert d_loc.numpy()[-1, 0] < 0.5


def test_actor_samples_at_a_saturated_mean_stay_inside_the_support():
    from common import dists
    policy = dists.trunc_normal(tf.fill([100000, 1], 20.0), tf.fill([100000, 1], -20.0), 0.1)
    sample = policy.sample(seed=(1, 2)).numpy()
    assert sample.max() <= 1 - dists.ReparameterizedTruncatedNormal.INSIDE and sample.min() >= -1
    assert np.all(np.isfinite(policy.log_prob(sample).numpy()))


def test_actor_init_std_sets_the_std_at_zero_logits_and_keeps_its_range():
    from common import dists
    zeros = tf.zeros([1, 2])
    shift = dists.std_logit_shift(0.3, 0.1)
    # DreamerV2's parameterisation: 2 sigmoid(0) + min_std = 1 + min_std, unshifted, or init_std 1.1 (a shift of 0).
    assert dists.trunc_normal(zeros, zeros, 0.1).distribution.scale.numpy() == pytest.approx(1.1)
    assert dists.trunc_normal(zeros, zeros, 0.1, dists.std_logit_shift(1.1, 0.1)).distribution.scale.numpy() == pytest.approx(1.1)
    assert dists.trunc_normal(zeros, zeros, 0.1, shift).distribution.scale.numpy() == pytest.approx(0.3, rel=1e-5)
    # The shift moves where the std starts, not its bounds: sigmoid(4 + log(1/9)) by hand at logits 8.
    by_hand = 2 / (1 + np.exp(-(4 + np.log(0.1 / 0.9)))) + 0.1
    logits = tf.fill([1, 2], 8.0)
    assert dists.trunc_normal(zeros, logits, 0.1, shift).distribution.scale.numpy() == pytest.approx(by_hand, rel=1e-5)
    for far in (-1e3, 1e3):
        std = dists.trunc_normal(zeros, tf.fill([1, 2], far), 0.1, shift).distribution.scale.numpy()
        assert 0.1 - 1e-6 <= std.min() and std.max() <= 2.1 + 1e-6


@pytest.mark.parametrize('init_std', [0.1, 0.05, 2.1, 3.0])
def test_actor_init_std_outside_the_std_range_is_a_one_line_error(init_std):
    from common import dists
    with pytest.raises(ValueError, match='actor.init_std must lie strictly between'):
        dists.std_logit_shift(init_std, 0.1)
