"""Network building blocks shared by the world model and the actor-critic (Keras 3 layers)."""
import re

import keras
import tensorflow as tf


def _flatten_leading(x, keep):
    """Merges all but the last `keep` axes, so one batched call covers any [B, T, ...] input."""
    lead = tf.shape(x)[:-keep]
    return tf.reshape(x, [-1, *x.shape[-keep:]]), lead


def _restore_leading(x, lead, keep):
    return tf.reshape(x, tf.concat([lead, x.shape[-keep:]], 0))


def hidden(layer, *args, act, norm):
    """One hidden layer `layer(*args)` with its activation, as a list of layers to call in order.
    norm 'layer' (DreamerV3): the layer without bias, LayerNorm over the last axis, then the activation."""
    if norm == 'layer':
        return [layer(*args, use_bias=False), keras.layers.LayerNormalization(epsilon=1e-3), keras.layers.Activation(act)]
    return [layer(*args, activation=act)]


def _hidden_stack(layers, units, act, norm):
    """`layers` hidden Dense layers of `units` (`hidden`), flattened into call order."""
    return [layer for _ in range(layers) for layer in hidden(keras.layers.Dense, units, act=act, norm=norm)]


def conv_layers(depth, act, norm='none', side=64):
    """DreamerV2's encoder convolutions: four stride-2 4x4 convolutions, 64x64 -> 2x2x(8 depth); `norm`
    as in `hidden`. `side` 32: the last three of them (32 -> 15 -> 6 -> 2 pixels), so a 32x32 image
    ends in the same 2x2x(8 depth) map. Returns the layers in call order."""
    first = CNN_SIDES.index(side)  # 64: all four layers; 32: from the second on.
    return [layer for i in range(first, 4) for layer in hidden(keras.layers.Conv2D, depth * 2 ** i, 4, 2, act=act, norm=norm)]


def conv_embed(convs, image, dtype):
    """uint8 images [.., S, S, C] (S in CNN_SIDES) -> float32 embeddings [.., 32 depth]."""
    x, lead = _flatten_leading(image, 3)
    x = tf.cast(x, dtype) / 255 - 0.5
    for layer in convs:
        x = layer(x)
    x = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
    return tf.cast(_restore_leading(x, lead, 1), tf.float32)


def deconv_layers(depth, act, channels, norm='none', resolution=64, side=64):
    """The mirror of conv_layers: DreamerV2's transposed convolutions (kernels 5, 5, 6, 6: 1 -> 5 -> 13
    -> 30 -> 64 pixels). The first only ever sees a 1x1 input, where it equals a Dense layer onto 5x5
    pixels; written as that matmul it runs 40x faster on CPU (TF's 1x1-input transposed conv kernel
    took 19 s for 800 frames). `norm` as in `hidden`; returns the layers in call order.
    `resolution` 32: a Dense layer onto 4x4, three 4x4 stride-2 transposed convolutions to 32x32, each
    pixel then repeated over a 2x2 block when the images are 64x64 (`side`; 2.5-3x cheaper on CPU)."""
    if resolution > side:
        raise ValueError(f'decoder.resolution={resolution} is finer than the {side}x{side} images; '
                         f'use --decoder.resolution {side}')
    if resolution == 32:
        upsample = [keras.layers.UpSampling2D(side // 32)] if side > 32 else []
        return [keras.layers.Dense(32 * depth), *hidden(keras.layers.Dense, 4 * 4 * 4 * depth, act=act, norm=norm),
                keras.layers.Reshape((4, 4, 4 * depth)),
                *hidden(keras.layers.Conv2DTranspose, 2 * depth, 4, 2, 'same', act=act, norm=norm),
                *hidden(keras.layers.Conv2DTranspose, depth, 4, 2, 'same', act=act, norm=norm),
                keras.layers.Conv2DTranspose(channels, 4, 2, 'same'), *upsample]
    return [keras.layers.Dense(32 * depth), *hidden(keras.layers.Dense, 5 * 5 * 4 * depth, act=act, norm=norm),
            keras.layers.Reshape((5, 5, 4 * depth)),
            *hidden(keras.layers.Conv2DTranspose, 2 * depth, 5, 2, act=act, norm=norm),
            *hidden(keras.layers.Conv2DTranspose, depth, 6, 2, act=act, norm=norm),
            keras.layers.Conv2DTranspose(channels, 6, 2)]


def deconv_image(layers, feat):
    """Features [.., F] -> float32 image means [.., S, S, C] in the encoder's input scale ([-0.5, 0.5])."""
    x, lead = _flatten_leading(feat, 1)
    for layer in layers:
        x = layer(x)
    return tf.cast(_restore_leading(x, lead, 3), tf.float32)


class ConvEncoder(keras.layers.Layer):
    """Images alone to embeddings (conv_layers); the offline models' image encoder."""

    def __init__(self, depth, act, **kwargs):
        super().__init__(**kwargs)
        self._convs = conv_layers(depth, act)

    def call(self, image):
        return conv_embed(self._convs, image, self.compute_dtype)


class KeypointEncoder(keras.layers.Layer):
    """Images to keypoints (a spatial softmax, Levine et al. 2016): convolutions keep a 32x32 map of
    2 depth channels, and each channel reports the expected (x, y) of its softmax over the map, in
    [-1, 1]. Where things are survives exactly, which DreamerV2's 2x2 map only keeps entangled; the
    offline policies' other image encoder (offline.bc.encoder)."""

    def __init__(self, depth, act, **kwargs):
        super().__init__(**kwargs)
        self._convs = [keras.layers.Conv2D(depth, 5, 2, 'same', activation=act),
                       keras.layers.Conv2D(2 * depth, 3, 1, 'same', activation=act),
                       keras.layers.Conv2D(2 * depth, 3, 1, 'same')]  # logits of the softmax: no activation

    def call(self, image):
        x, lead = _flatten_leading(image, 3)
        x = tf.cast(x, self.compute_dtype) / 255 - 0.5
        for conv in self._convs:
            x = conv(x)
        x = tf.cast(x, tf.float32)
        height, width, channels = x.shape[1:]
        weights = tf.nn.softmax(tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, channels, height * width]), -1)
        rows, cols = tf.meshgrid(tf.linspace(-1.0, 1.0, height), tf.linspace(-1.0, 1.0, width), indexing='ij')
        points = [tf.reduce_sum(weights * tf.reshape(grid, [1, 1, -1]), -1) for grid in (cols, rows)]
        return _restore_leading(tf.concat(points, -1), lead, 1)


class ConvDecoder(keras.layers.Layer):
    """Features to one image's mean (deconv_layers); the offline models' image decoder."""

    def __init__(self, depth, act, channels=3, **kwargs):
        super().__init__(**kwargs)
        self._layers = deconv_layers(depth, act, channels)

    def call(self, feat):
        return deconv_image(self._layers, feat)


NOT_OBSERVED = ('reward', 'is_first', 'is_last', 'is_terminal')  # Travel with the obs but are targets or flags.
CNN_SIDES = (64, 32)  # The square images the convolution stacks map to 2x2 features and back.


def select_keys(obs_space, cnn_pattern, mlp_pattern):
    """(image keys, vector keys) of `obs_space`, each sorted: rank-3 entries whose name fully matches
    `cnn_pattern`, rank-1 entries matching `mlp_pattern`. Reward, the flags and `log_*` entries are
    never inputs; other ranks (e.g. a scalar `success`) neither."""
    def pick(rank, pattern):
        return sorted(key for key, space in obs_space.items()
                      if len(space.shape) == rank and key not in NOT_OBSERVED and not key.startswith('log_')
                      and re.fullmatch(pattern, key))
    image_keys, vector_keys = pick(3, cnn_pattern), pick(1, mlp_pattern)
    shapes = {tuple(obs_space[key].shape[:2]) for key in image_keys}
    for key in image_keys:
        height, width = obs_space[key].shape[:2]
        if height != width or height not in CNN_SIDES:
            raise ValueError(f"observation '{key}' has shape {tuple(obs_space[key].shape)}; the CNN takes "
                             f"64x64 or 32x32 images (--env.size 64 64 or 32 32), or leave it out of the cnn_keys")
    if len(shapes) > 1:
        raise ValueError(f"the image keys {', '.join(image_keys)} differ in size ({', '.join(map(str, sorted(shapes)))}); "
                         "the CNN takes one size, so leave some out of the cnn_keys")
    return image_keys, vector_keys


def image_side(obs_space, image_keys):
    """The side of the (square, equal) images `select_keys` picked; 64 when there are none."""
    return int(obs_space[image_keys[0]].shape[0]) if image_keys else 64


def observed(obs_space):
    """The observation keys an encoder could read, with their shapes, for error messages."""
    return [f'{key} {tuple(space.shape)}' for key, space in obs_space.items() if key not in NOT_OBSERVED]


def symlog(x):
    """sign(x) log(1 + |x|): squashes large magnitudes, identity-like near 0 (DreamerV3)."""
    return tf.sign(x) * tf.math.log1p(tf.abs(x))


def symexp(x):
    """sign(x) (exp(|x|) - 1), the inverse of symlog."""
    return tf.sign(x) * tf.math.expm1(tf.abs(x))


class Encoder(keras.layers.Layer):
    """Every observed key to one embedding: image keys (uint8 [.., S, S, C] of one `side` S in CNN_SIDES,
    concatenated on channels) through DreamerV2's stride-2 4x4 convolutions (conv_layers) to 2x2x(8 depth), vector keys (concatenated)
    through an MLP, the two embeddings concatenated; `norm` as in `hidden`. With pixels and no norm the
    layers are exactly the old ConvEncoder's, so the checkpoints of pixel runs keep their keys."""

    def __init__(self, image_keys, vector_keys, depth, act, mlp_layers, mlp_units, symlog_inputs, norm='none', side=64,
                 **kwargs):
        super().__init__(**kwargs)
        if not image_keys and not vector_keys:
            raise ValueError('the encoder was given no observation key')
        self.image_keys, self.vector_keys = tuple(image_keys), tuple(vector_keys)
        self._symlog = symlog_inputs
        self._convs = conv_layers(depth, act, norm, side) if image_keys else []
        self._mlp = _hidden_stack(mlp_layers, mlp_units, act, norm) if vector_keys else []

    @property
    def keys(self):
        return self.image_keys + self.vector_keys

    def call(self, obs):
        parts = []
        if self.image_keys:
            image = tf.concat([obs[key] for key in self.image_keys], -1)
            parts.append(conv_embed(self._convs, image, self.compute_dtype))
        if self.vector_keys:
            x = tf.concat([tf.cast(obs[key], tf.float32) for key in self.vector_keys], -1)
            x = tf.cast(symlog(x) if self._symlog else x, self.compute_dtype)
            for layer in self._mlp:
                x = layer(x)
            parts.append(tf.cast(x, tf.float32))
        return tf.concat(parts, -1) if len(parts) > 1 else parts[0]


class Decoder(keras.layers.Layer):
    """Features to every decoded key: image keys (concatenated on channels) through deconv_layers,
    vector keys through an MLP with one linear output per key.

    `call` returns {key: predicted mean}: images in the encoder's input scale ([-0.5, 0.5]), vectors
    in `target`'s scale (symlog when the encoder squashes its inputs); `video` the panels an open-loop
    video shows of an image key; `norm` as in `hidden`; `resolution` as in `deconv_layers`. With
    pixels and no norm the layers are exactly the old ConvDecoder's, so pixel checkpoints keep their keys."""

    def __init__(self, obs_space, image_keys, vector_keys, depth, act, mlp_layers, mlp_units, symlog_targets,
                 norm='none', resolution=64, **kwargs):
        super().__init__(**kwargs)
        self.image_keys, self.vector_keys = tuple(image_keys), tuple(vector_keys)
        self._symlog = symlog_targets
        self._channels = [int(obs_space[key].shape[-1]) for key in self.image_keys]
        self._sizes = [int(obs_space[key].shape[0]) for key in self.vector_keys]
        side = image_side(obs_space, self.image_keys)
        self._deconvs = deconv_layers(depth, act, sum(self._channels), norm, resolution, side) if image_keys else []
        if self.vector_keys:
            self._mlp = _hidden_stack(mlp_layers, mlp_units, act, norm)
            self._out = keras.layers.Dense(sum(self._sizes))

    @property
    def keys(self):
        return self.image_keys + self.vector_keys

    def call(self, feat):
        out = {}
        if self.image_keys:
            x = deconv_image(self._deconvs, feat)
            out.update(zip(self.image_keys, tf.split(x, self._channels, -1)))
        if self.vector_keys:
            x = feat
            for layer in self._mlp:
                x = layer(x)
            x = tf.cast(self._out(x), tf.float32)
            out.update(zip(self.vector_keys, tf.split(x, self._sizes, -1)))
        return out

    def video(self, feat, key):
        """What a video shows of the prediction for image `key`: [.., P, H, W, C] panels in the image's
        scale, the prediction first, then the parts it is composed of (none here: P = 1)."""
        return self(feat)[key][..., None, :, :, :]

    def target(self, obs, key):
        """What the prediction for `key` is compared with: images scaled to [-0.5, 0.5], vectors as
        the encoder reads them."""
        if key in self.image_keys:
            return tf.cast(obs[key], tf.float32) / 255 - 0.5
        value = tf.cast(obs[key], tf.float32)
        return symlog(value) if self._symlog else value


class MLP(keras.layers.Layer):
    """`layers` hidden Dense layers (`norm` as in `hidden`), then a linear output of size `out` in
    float32; `zero_out` starts that output at exactly 0 (DreamerV3's two-hot heads)."""

    def __init__(self, layers, units, act, out, norm='none', zero_out=False, **kwargs):
        super().__init__(**kwargs)
        self._hidden = _hidden_stack(layers, units, act, norm)
        self._out = keras.layers.Dense(out, kernel_initializer='zeros' if zero_out else 'glorot_uniform')

    def call(self, x):
        for layer in self._hidden:
            x = layer(x)
        return tf.cast(self._out(x), tf.float32)
