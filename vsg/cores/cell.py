"""The recurrent cell of the latent dynamics: DreamerV2's LayerNorm GRU."""
import keras
import tensorflow as tf


class GatedCell(keras.layers.Layer):
    """`[r, c, u] = W[x, h]`, `h' = g * tanh(sigmoid(r) * c) + (1 - g) * h` with `g = sigmoid(u - 1)`.

    The -1 bias makes the cell keep its state by default early in training."""

    def __init__(self, size, norm=True, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self._linear = keras.layers.Dense(3 * size, use_bias=not norm)
        self._norm = keras.layers.LayerNormalization(epsilon=1e-3) if norm else None

    def call(self, x, h):
        parts = self._linear(tf.concat([tf.cast(x, self.compute_dtype), tf.cast(h, self.compute_dtype)], -1))
        if self._norm is not None:
            parts = self._norm(parts)
        reset, cand, update = tf.split(tf.cast(parts, tf.float32), 3, -1)
        cand = tf.tanh(tf.sigmoid(reset) * cand)
        gate = tf.sigmoid(update - 1)
        return gate * cand + (1 - gate) * h
