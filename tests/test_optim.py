import keras
import numpy as np
import pytest
import tensorflow as tf

from common import optim


def _step(opt, weight, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(weight)
    return opt(tape, loss, [weight])


def test_float32_step_reports_the_gradient_norm_and_moves_the_weight():
    weight = tf.Variable([3.0, 4.0])
    opt = optim.Optimizer('opt', lr=0.1, eps=1e-8, clip=100.0, wd=0.0)
    metrics = _step(opt, weight, lambda w: 0.5 * tf.reduce_sum(w ** 2))
    assert metrics['opt_grad_norm'].numpy() == pytest.approx(5.0)  # |w| = 5
    np.testing.assert_allclose(weight.numpy(), [2.9, 3.9], atol=1e-5)  # Adam's first step is lr * sign


def test_loss_scaling_unscales_gradients_and_skips_non_finite_steps():
    weight = tf.Variable([3.0, 4.0])
    opt = optim.Optimizer('opt', lr=0.1, eps=1e-8, clip=100.0, wd=0.0, precision='mixed_float16')
    scale = opt._scale.numpy()
    metrics = _step(opt, weight, lambda w: 0.5 * tf.reduce_sum(w ** 2))
    assert metrics['opt_grad_norm'].numpy() == pytest.approx(5.0)  # the unscaled norm
    assert metrics['opt_loss_scale'].numpy() == scale
    np.testing.assert_allclose(weight.numpy(), [2.9, 3.9], atol=1e-5)
    assert metrics['opt_overflow'].numpy() == 0
    metrics = _step(opt, weight, lambda w: tf.reduce_sum(w) * np.inf)
    np.testing.assert_allclose(weight.numpy(), [2.9, 3.9], atol=1e-5)  # skipped
    assert metrics['opt_overflow'].numpy() == 1 and metrics['opt_grad_norm'].numpy() == 0
    assert metrics['opt_loss_scale'].numpy() == scale / 2


@pytest.mark.parametrize('precision', ['mixed_float16', 'mixed_bfloat16'])
def test_agent_trains_in_mixed_precision(precision):
    import gymnasium
    from common import config as config_lib
    from vsg.agent import Agent
    # The dmc actor objective (REINFORCE on normalised returns) mixes the heads' outputs with float32 scales.
    config = config_lib.load(['--configs', 'debug', '--precision', precision, '--actor_grad', 'reinforce',
                              '--return_norm.on', 'True'])
    try:
        agent = Agent({'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)},
                      {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}, config)
        shape = (config.batch_size, config.batch_length)
        data = {
            'image': tf.fill([*shape, 64, 64, 3], tf.constant(128, tf.uint8)),
            'action': tf.zeros([*shape, 2]), 'reward': tf.ones(shape),
            'is_first': tf.zeros(shape, tf.bool), 'is_terminal': tf.zeros(shape, tf.bool)}
        before = [v.numpy().copy() for v in agent.wm.trainable_variables]
        # The initial scale of 2^15 may overflow float16 at first: those steps are skipped, not fatal.
        steps = [{k: v.numpy() for k, v in agent.train(data).items()} for _ in range(20)]
        after = [v.numpy() for v in agent.wm.trainable_variables]
    finally:
        keras.config.set_dtype_policy('float32')  # Agent sets the global policy; later tests expect float32.
    assert agent.wm.encoder.compute_dtype == {'mixed_float16': 'float16', 'mixed_bfloat16': 'bfloat16'}[precision]
    assert all(np.all(np.isfinite(v)) for metrics in steps for v in metrics.values())
    assert steps[-1].get('model_opt_overflow', 0) == 0
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
