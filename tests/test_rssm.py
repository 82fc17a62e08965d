"""RSSM specifics: latent shapes for discrete and Gaussian latents, the shared deterministic state,
per-row resets. The contract every core shares is tested in test_cores.py."""
import numpy as np
import pytest
import tensorflow as tf

from test_cores import A, B, E, T, inputs  # one batch of test sequences for every core test
from vsg.cores.rssm import RSSM


def make_core(discrete):
    rng = tf.random.Generator.from_seed(1)
    return RSSM(rng, deter=8, hidden=6, stoch=4, discrete=discrete, act='elu', min_std=0.1,
                kl_balance=0.8, kl_free=0.0)


@pytest.mark.parametrize('discrete', [0, 3])
def test_observe_and_imagine_shapes(discrete):
    core = make_core(discrete)
    embed, action, is_first = inputs()
    post, prior = core.observe(embed, action, is_first)
    stoch_shape = (B, T, 4, 3) if discrete else (B, T, 4)
    for state in (post, prior):
        assert state['deter'].shape == (B, T, 8)
        assert state['stoch'].shape == stoch_shape
    assert core.get_feat(post).shape == (B, T, core.feat_size)
    assert core.feat_size == 4 * (discrete or 1) + 8
    start = {k: v[:, -1] for k, v in post.items()}
    imagined = core.imagine(action, start)
    assert imagined['deter'].shape == (B, T, 8) and imagined['stoch'].shape == stoch_shape
    loss, metrics = core.loss(post, prior)
    assert loss.shape == () and np.isfinite(loss.numpy())
    assert {'kl', 'prior_ent', 'post_ent'} <= set(metrics)
    if discrete:  # Samples are one-hot in the forward pass.
        np.testing.assert_allclose(post['stoch'].numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('discrete', [0, 3])
def test_posterior_shares_the_prior_deterministic_state(discrete):
    core = make_core(discrete)
    post, prior = core.observe(*inputs())
    np.testing.assert_array_equal(post['deter'].numpy(), prior['deter'].numpy())


def test_reset_applies_per_batch_row():
    core = make_core(3)
    embed = tf.random.normal([2, E])
    garbage = tf.nest.map_structure(lambda x: x + 3.0, core.initial(2))
    is_first = tf.constant([True, False])
    mixed, _ = core.obs_step(garbage, tf.ones([2, A]), embed, is_first, sample=False)
    fresh, _ = core.obs_step(core.initial(2), tf.zeros([2, A]), embed, tf.ones([2], tf.bool), sample=False)
    np.testing.assert_allclose(mixed['deter'][0].numpy(), fresh['deter'][0].numpy(), rtol=1e-6)
    assert not np.allclose(mixed['deter'][1].numpy(), fresh['deter'][1].numpy())
