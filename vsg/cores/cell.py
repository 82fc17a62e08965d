"""The recurrent cell shared by every core: a GRU whose update gate can be a stochastic binary gate."""
import keras
import tensorflow as tf


class GatedCell(keras.layers.Layer):
    """`[r, c, u] = W[x, h]`, candidate `ĉ = tanh(sigmoid(r) * c)`, update probability `p = sigmoid(u - 1)`.

    Returns `(ĉ, g, p)`; callers mix with `gated_update(g, new, old)`, so one cell serves the RSSM
    (g = p, new = ĉ: DreamerV2's GRU), VSG (binary g, new = ĉ) and SVSG (binary g, new = a latent sample).
    Given `rng`, the gate is binary: g ~ Bernoulli(p) with a straight-through estimator so gradients
    reach p; `sample=False` uses the mean gate p instead. The -1 bias makes the cell keep its
    state by default early in training. `gates`: one update gate per dimension (None) or that many
    shared by the dimensions, e.g. 1: the whole vector updates or is kept (the slot core's gate per
    slot). Outputs are float32 whatever the compute precision."""

    def __init__(self, size, norm=True, rng=None, gates=None, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self._rng = rng
        self._gates = gates or size
        self._linear = keras.layers.Dense(2 * size + self._gates, use_bias=not norm)
        self._norm = keras.layers.LayerNormalization(epsilon=1e-3) if norm else None

    def call(self, x, h, sample=True):
        parts = self._linear(tf.concat([tf.cast(x, self.compute_dtype), tf.cast(h, self.compute_dtype)], -1))
        if self._norm is not None:
            parts = self._norm(parts)
        reset, cand, update = tf.split(tf.cast(parts, tf.float32), [self.size, self.size, self._gates], -1)
        cand = tf.tanh(tf.sigmoid(reset) * cand)
        prob = tf.sigmoid(update - 1)
        return cand, self._gate(prob, sample), prob

    def _gate(self, prob, sample):
        if self._rng is None:
            return prob
        if not sample:
            # The deterministic gate is its mean p, not the Bernoulli mode: the gate KL pulls p towards
            # the prior (0.4 < 0.5), so thresholding at 0.5 would shut nearly every gate.
            return prob
        # Drawn from the core's generator so runs reproduce, also under XLA.
        binary = tf.cast(self._rng.uniform(tf.shape(prob)) < prob, tf.float32)
        return binary + (prob - tf.stop_gradient(prob))  # Exactly binary forward, p's gradient backward.


def gated_update(gate, new, old):
    """`g * new + (1 - g) * old`: where the gate is closed the old value is carried unchanged."""
    return gate * new + (1 - gate) * old
