"""Behaviour cloning from observations: the latent policy π(o_t) -> z_t regressed on the IDM's
latents (no true actions), and the baseline π_bc(o_t) -> a_t trained on every true action.

Continuous actions are regressed (MSE) and clipped to [-1, 1] when acting; one-hot actions are
classified (softmax cross-entropy) and acted on by sampling the softmax (offline.discrete_act sample)
or by its argmax. A clone that always takes the argmax repeats its mistakes: on the gridworld a
state where it picks a wrong move or `stay` returns forever, which the noisy data policy never does.
"""
import keras
import tensorflow as tf

from common import nets
from common import optim
from vsg.offline.lapo import encoder


class Policy(keras.layers.Layer):
    """Stacked inputs up to o_t -> a vector of size `out`; images through the encoder named `image`
    (offline.bc.encoder: `keypoints`, the default, which measured better on the gridworld and Fetch Reach,
    or DreamerV2's `conv`)."""

    def __init__(self, kind, out, net, image='conv', **kwargs):
        super().__init__(**kwargs)
        self._encoder = encoder(kind, net.depth, net.act, 'encoder', image)
        self._head = nets.MLP(net.layers, net.units, net.act, out, name='head')

    def call(self, stacked):
        return self._head(self._encoder(stacked))


def action_loss(output, actions, discrete):
    if discrete:
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(actions, output))
    return tf.reduce_mean((output - actions) ** 2)


DISCRETE_ACTS = ('sample', 'argmax')


def to_action(output, discrete, seed=None):
    """An env action from a net's output: for one-hot actions a draw from the softmax of the logits
    with the stateless `seed` ([2] int), or the argmax without one; else clipped to [-1, 1]."""
    if not discrete:
        return tf.clip_by_value(output, -1.0, 1.0)
    if seed is None:
        index = tf.argmax(output, -1)
    else:
        index = tf.random.stateless_categorical(output, 1, seed)[:, 0]
    return tf.one_hot(index, output.shape[-1])


def optimizer(name, net):
    return optim.Optimizer(name, net.lr, 1e-5, 100.0, net.wd)


def make_update(model, opt, loss_fn):
    """A compiled update of `model` on `loss_fn(model, *batch) -> (loss, metrics)`."""
    opt.build(model.trainable_variables)

    @tf.function
    def update(batch):
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(model, *batch)
        return {**metrics, **opt(tape, loss, model.trainable_variables)}
    return lambda batch: update(tuple(tf.convert_to_tensor(x) for x in batch))


def latent_loss(policy, stacked, z):
    loss = tf.reduce_mean((policy(stacked) - z) ** 2)
    return loss, {'latent_mse': loss}


def behaviour_loss(discrete):
    def loss_fn(policy, stacked, actions):
        output = policy(stacked)
        loss = action_loss(output, actions, discrete)
        metrics = {'action_loss': loss}
        if discrete:
            metrics['accuracy'] = tf.reduce_mean(tf.cast(tf.argmax(output, -1) == tf.argmax(actions, -1), tf.float32))
        return loss, metrics
    return loss_fn
