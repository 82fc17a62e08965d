"""Network building blocks shared by the world model and the actor-critic (Keras 3 layers)."""
import keras
import tensorflow as tf


def _flatten_leading(x, keep):
    """Merges all but the last `keep` axes, so one batched call covers any [B, T, ...] input."""
    lead = tf.shape(x)[:-keep]
    return tf.reshape(x, [-1, *x.shape[-keep:]]), lead


def _restore_leading(x, lead, keep):
    return tf.reshape(x, tf.concat([lead, x.shape[-keep:]], 0))


class ConvEncoder(keras.layers.Layer):
    """DreamerV2's encoder: four stride-2 4x4 convolutions, 64x64x3 -> 2x2x(8 depth), flattened."""

    def __init__(self, depth, act, **kwargs):
        super().__init__(**kwargs)
        self._convs = [keras.layers.Conv2D(depth * 2 ** i, 4, 2, activation=act) for i in range(4)]

    def call(self, image):
        x, lead = _flatten_leading(image, 3)
        x = tf.cast(x, self.compute_dtype) / 255 - 0.5
        for conv in self._convs:
            x = conv(x)
        x = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
        return tf.cast(_restore_leading(x, lead, 1), tf.float32)


class ConvDecoder(keras.layers.Layer):
    """Mirror of the encoder: DreamerV2's transposed convolutions (kernels 5, 5, 6, 6: 1 -> 5 -> 13
    -> 30 -> 64 pixels). The first one only ever sees a 1x1 input, where it equals a Dense layer onto
    5x5 pixels; written as that matmul it runs 40x faster on CPU (TF's 1x1-input transposed conv
    kernel took 19 s for 800 frames).

    Returns the predicted image mean in the encoder's input scale ([-0.5, 0.5])."""

    def __init__(self, depth, act, channels=3, **kwargs):
        super().__init__(**kwargs)
        self._depth = depth
        self._dense = keras.layers.Dense(32 * depth)
        self._first = keras.layers.Dense(5 * 5 * 4 * depth, activation=act)
        self._deconvs = [
            keras.layers.Conv2DTranspose(2 * depth, 5, 2, activation=act),
            keras.layers.Conv2DTranspose(depth, 6, 2, activation=act),
            keras.layers.Conv2DTranspose(channels, 6, 2)]

    def call(self, feat):
        x, lead = _flatten_leading(feat, 1)
        x = self._first(self._dense(x))
        x = tf.reshape(x, [-1, 5, 5, 4 * self._depth])
        for deconv in self._deconvs:
            x = deconv(x)
        return tf.cast(_restore_leading(x, lead, 3), tf.float32)


class MLP(keras.layers.Layer):
    """`layers` hidden Dense layers, then a linear output of size `out` in float32."""

    def __init__(self, layers, units, act, out, **kwargs):
        super().__init__(**kwargs)
        self._hidden = [keras.layers.Dense(units, activation=act) for _ in range(layers)]
        self._out = keras.layers.Dense(out)

    def call(self, x):
        for layer in self._hidden:
            x = layer(x)
        return tf.cast(self._out(x), tf.float32)
