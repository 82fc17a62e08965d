"""A SAVi-style video slot autoencoder (docs/design.md, "Object slots"): K slots per frame, found by
slot attention over the frame's tokens, started from learned slots on every frame or (`carry`) carried
from frame to frame by a predictor, each decoded on
its own into RGB and an alpha logit; the alphas' softmax over slots are the masks that compose the
frame.

Shapes: frames uint8 [B, T, H, W, 3]; tokens [N, M, C]; slots [.., K, D]; masks [.., K, H, W];
reconstructions [.., H, W, 3] in [-0.5, 0.5], the scale the frames are compared in. Always float32.
"""
import keras
import numpy as np
import tensorflow as tf


def _coordinates(height, width):
    """[H, W, 4]: each position's x and y in [0, 1] and their complements (1 - x, 1 - y)."""
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing='ij')
    return np.stack([xs, ys, 1 - xs, 1 - ys], -1).astype(np.float32)


def _mlp(hidden, out, name):
    return [keras.layers.Dense(hidden, activation='relu', name=f'{name}_hidden'),
            keras.layers.Dense(out, name=f'{name}_out')]


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


class PositionEmbedding(keras.layers.Layer):
    """Adds a learned linear map of each position's coordinates to feature maps [N, H, W, C] (SAVi's
    soft position embedding), so that tokens and broadcast slots know where they are."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self._project = keras.layers.Dense(channels, name='project')

    def call(self, x):
        return x + self._project(tf.constant(_coordinates(x.shape[1], x.shape[2])))


class Encoder(keras.layers.Layer):
    """Frames [N, H, W, 3] uint8 -> tokens [N, tokens², C]: 5x5 ReLU convolutions (stride 2 down to the
    token grid, then stride 1), the position embedding, LayerNorm and a per-token MLP."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        channels = config.encoder_channels
        self._convs = [keras.layers.Conv2D(channels, 5, stride, padding='same', activation='relu', name=f'conv{i}')
                       for i, stride in enumerate(config.encoder_strides)]
        self._position = PositionEmbedding(channels, name='position')
        self._norm = keras.layers.LayerNormalization(name='norm')
        self._mlp = _mlp(config.mlp_hidden, channels, 'mlp')

    def call(self, frames):
        x = _apply(self._convs, tf.cast(frames, tf.float32) / 255 - 0.5)
        x = self._position(x)
        x = tf.reshape(x, [-1, x.shape[1] * x.shape[2], x.shape[3]])
        return _apply(self._mlp, self._norm(x))


class SlotAttention(keras.layers.Layer):
    """Slots [N, K, D] refined on tokens [N, M, C] (Locatello et al. 2020): per iteration the slots'
    queries compete for each token (softmax over slots), each slot takes the attention-weighted mean
    of the tokens' values, and a GRU plus a residual MLP fold that into the slot. Permuting the slots
    permutes the result; permuting the tokens leaves it unchanged.

    With more than one iteration the gradient skips the earlier ones: the last iteration starts from
    their result, whose gradient goes straight to the starting slots (BO-QSA, Jia et al. 2023). Learned
    starting slots then learn to be good starting points; with the gradient through every iteration
    the slots collapsed onto one vector (docs/design.md, "Object slots")."""

    def __init__(self, slot_size, mlp_hidden, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self._size, self._epsilon = slot_size, epsilon
        self._norm_tokens = keras.layers.LayerNormalization(name='norm_tokens')
        self._norm_slots = keras.layers.LayerNormalization(name='norm_slots')
        self._norm_update = keras.layers.LayerNormalization(name='norm_update')
        self._query, self._key, self._value = (
            keras.layers.Dense(slot_size, use_bias=False, name=name) for name in ('query', 'key', 'value'))
        self._gru = keras.layers.GRUCell(slot_size, name='gru')
        self._mlp = _mlp(mlp_hidden, slot_size, 'mlp')

    def call(self, slots, tokens, iterations):
        tokens = self._norm_tokens(tokens)
        keys = self._key(tokens) * self._size ** -0.5
        values = self._value(tokens)
        count = slots.shape[1]
        start = slots
        for iteration in range(iterations):
            if iteration and iteration == iterations - 1:
                slots = start + tf.stop_gradient(slots - start)  # the value of slots, the gradient of start
            logits = tf.matmul(keys, self._query(self._norm_slots(slots)), transpose_b=True)  # [N, M, K]
            attention = tf.nn.softmax(logits, -1) + self._epsilon  # slots compete for each token
            weights = attention / tf.reduce_sum(attention, 1, keepdims=True)  # a weighted mean over tokens
            updates = tf.matmul(weights, values, transpose_a=True)  # [N, K, D]
            flat, _ = self._gru(tf.reshape(updates, [-1, self._size]), [tf.reshape(slots, [-1, self._size])])
            slots = tf.reshape(flat, [-1, count, self._size])
            slots = slots + _apply(self._mlp, self._norm_update(slots))
        return slots


class Predictor(keras.layers.Layer):
    """Slots of frame t -> the slots frame t + 1 starts from: one transformer block over the slots
    (multi-head self-attention, then an MLP, each added back and followed by LayerNorm)."""

    def __init__(self, slot_size, heads, mlp_hidden, **kwargs):
        super().__init__(**kwargs)
        self._attention = keras.layers.MultiHeadAttention(heads, slot_size // heads, name='attention')
        self._norm_attention = keras.layers.LayerNormalization(name='norm_attention')
        self._norm_mlp = keras.layers.LayerNormalization(name='norm_mlp')
        self._mlp = _mlp(mlp_hidden, slot_size, 'mlp')

    def call(self, slots):
        x = self._norm_attention(slots + self._attention(slots, slots))
        return self._norm_mlp(x + _apply(self._mlp, x))


class SlotInit(keras.layers.Layer):
    """K learned initial slots, each with its own mean and log-std: in training the slots are drawn
    around their means, otherwise they are the means, so slot k starts in the same place on every
    video and tends to keep one role."""

    def __init__(self, num_slots, slot_size, seed, init_std=0.1, **kwargs):
        super().__init__(**kwargs)
        self._shape, self._seed_value, self._init_std = (num_slots, slot_size), seed, init_std

    def build(self, _=None):
        self.mean = self.add_weight(shape=self._shape, initializer=keras.initializers.RandomNormal(stddev=1.0), name='mean')
        self.log_std = self.add_weight(shape=self._shape, initializer=keras.initializers.Constant(np.log(self._init_std)),
                                       name='log_std')
        # Built here, so its state is keyed under this layer in checkpoints.
        self._noise = keras.random.SeedGenerator(self._seed_value, name='noise')

    def call(self, batch_size, training=False, noise=None):
        """`noise`: standard normal draws [batch_size, K, D] to sample with in training, for a caller
        that draws every sample from its own generator (the slot core); else this layer draws them."""
        mean = tf.broadcast_to(self.mean, [batch_size, *self._shape])
        if not training:
            return mean
        if noise is None:
            noise = keras.random.normal([batch_size, *self._shape], seed=self._noise)
        return mean + tf.exp(self.log_std) * noise


class BroadcastDecoder(keras.layers.Layer):
    """Each slot [N, D] -> RGB and an alpha logit [N, S, S, 4] at S = decoder_size: the slot broadcast
    to a decoder_grid² map plus the position embedding, a per-position ReLU layer, then 4x4 stride-2
    transposed convolutions up to S² and a 3x3 convolution to 4 channels. (A wider first convolution
    would be wasted: every position holds the same slot and only the linear position embedding
    differs.) `frame` and `decode` compose a frame's slots by their masks, at the frame's resolution."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self._grid, self._side = config.decoder_grid, config.resolution
        channels = config.decoder_channels
        self._position = PositionEmbedding(config.slot_size, name='position')
        self._stack = [keras.layers.Dense(channels, activation='relu', name='mix')] + [
            keras.layers.Conv2DTranspose(channels, 4, 2, padding='same', activation='relu', name=f'up{i}')
            for i in range(config.decoder_upsamplings)]
        self._out = keras.layers.Conv2D(4, 3, padding='same', name='out')

    def call(self, slots):
        x = tf.tile(slots[:, None, None, :], [1, self._grid, self._grid, 1])
        return self._out(_apply(self._stack, self._position(x)))

    def frame(self, slots):
        """slots [.., K, D] -> the frames they compose [.., H, W, 3] in [-0.5, 0.5]."""
        return _upsample(self._compose(slots)[0], self._side)

    def decode(self, slots):
        """slots [.., K, D] -> (frames [.., H, W, 3] in [-0.5, 0.5], masks [.., K, H, W] summing to 1 over
        the slots at every pixel, each slot's own RGB [.., K, H, W, 3])."""
        recon, masks, rgb = self._compose(slots)
        return _upsample(recon, self._side), _upsample(masks[..., None], self._side)[..., 0], _upsample(rgb, self._side)

    def _compose(self, slots):
        """(frames [.., S, S, 3], masks [.., K, S, S], the slots' RGB [.., K, S, S, 3]) at the decoder's
        resolution S: the frame is composed there and only then upsampled (the per-slot maps at the
        frame's size would cost as much again as the decoder)."""
        lead = tf.shape(slots)[:-1]  # [.., K]
        x = self(tf.reshape(slots, [-1, slots.shape[-1]]))
        x = tf.reshape(x, tf.concat([lead, tf.shape(x)[1:]], 0))  # [.., K, S, S, 4]
        rgb, alpha = x[..., :3], x[..., 3]
        # The softmax over the slot axis, written out: tf.nn.softmax on an inner axis transposes.
        alpha = tf.exp(alpha - tf.reduce_max(alpha, -3, keepdims=True))
        masks = alpha / tf.reduce_sum(alpha, -3, keepdims=True)
        return tf.reduce_sum(masks[..., None] * rgb, -4), masks, rgb


def _upsample(x, side):
    """Maps [.., S, S, C] bilinearly to [.., side, side, C]: each output a convex combination of
    neighbours, so masks still sum to 1."""
    if x.shape[-2] == side:
        return x
    up = tf.image.resize(tf.reshape(x, [-1, *x.shape[-3:]]), [side, side], 'bilinear')
    return tf.reshape(up, tf.concat([tf.shape(x)[:-3], [side, side, x.shape[-1]]], 0))


class SlotModel(keras.layers.Layer):
    """The video slot autoencoder. `call(frames, training)` runs it on windows; `loss` is the MSE of the
    reconstruction; `encode` and `decode` are what other parts (offline representations) call on a
    trained model (vsg.slots.load); the slot core (vsg/cores/slot.py) runs its layers itself."""

    def __init__(self, config, seed=0, name='slots', **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.encoder = Encoder(config, name='encoder')
        self.init = SlotInit(config.num_slots, config.slot_size, seed, name='init')
        self.attention = SlotAttention(config.slot_size, config.mlp_hidden, name='attention')
        self.predictor = (Predictor(config.slot_size, config.predictor_heads, config.mlp_hidden, name='predictor')
                          if config.carry else None)
        self.decoder = BroadcastDecoder(config, name='decoder')
        # encode's compiled steps: a window's first chunk, and a later one continuing given slots.
        self._encode_first = tf.function(lambda frames: self._encode(frames, None))
        self._encode_later = tf.function(self._encode)

    def build_all(self):
        """Creates every variable (a two-frame window touches every layer)."""
        side = self.config.resolution
        self(tf.zeros([1, 2, side, side, 3], tf.uint8))

    def track(self, frames, slots=None, training=False):
        """Slots [B, T, K, D] of frames [B, T, H, W, 3]. The first frame starts from the initial slots
        (or, given `slots` [B, K, D] of the frame before, from the predictor's step of them); so does
        every later frame, from the predictor's step of the slots before when `carry`, else from the
        initial slots again (`slots` then unused)."""
        batch, steps = tf.shape(frames)[0], frames.shape[1]
        side = self.config.resolution
        tokens = self.encoder(tf.reshape(frames, [-1, side, side, 3]))
        tokens = tf.reshape(tokens, [batch, steps, *tokens.shape[1:]])
        result = []
        for t in range(steps):
            if not self.config.carry or (t == 0 and slots is None):
                slots, iterations = self.init(batch, training=training), self.config.iters_first
            else:
                slots, iterations = self.predictor(slots), self.config.iters_later
            slots = self.attention(slots, tokens[:, t], iterations=iterations)
            result.append(slots)
        return tf.stack(result, 1)

    def decode(self, slots):
        """slots [.., K, D] -> (reconstructions [.., H, W, 3] in [-0.5, 0.5], masks [.., K, H, W] summing
        to 1 over the slots at every pixel)."""
        recon, masks, _ = self.decode_slots(slots)
        return recon, masks

    def decode_slots(self, slots):
        """As decode, also returning each slot's own RGB [.., K, H, W, 3] (what the videos show)."""
        return self.decoder.decode(slots)

    def call(self, frames, training=False):
        slots = self.track(frames, training=training)
        recon, masks = self.decode(slots)
        return {'slots': slots, 'recon': recon, 'masks': masks}

    def loss(self, frames, training=True):
        """(MSE of the reconstructions against the frames, both in [-0.5, 0.5]; metrics)."""
        recon = self.decoder.frame(self.track(frames, training=training))
        return tf.reduce_mean((recon - (tf.cast(frames, tf.float32) / 255 - 0.5)) ** 2), {}

    def encode(self, frames, chunk=16, slots=None):
        """Slots [B, T, K, D] and masks [B, T, K, H, W] (numpy) of uint8 frames [B, T, H, W, 3] at
        inference: `track` with the mean initial slots, `chunk` frames per compiled call (one trace per
        chunk shape: the time loop is unrolled). Encoding a video piece by piece, each piece given the
        last slots of the one before, equals encoding it at once."""
        frames = np.asarray(frames)
        carried = slots
        slots, masks = [], []
        for start in range(0, frames.shape[1], chunk):
            part = frames[:, start:start + chunk]
            if carried is None:
                part_slots, part_masks = self._encode_first(part)
            else:
                part_slots, part_masks = self._encode_later(part, carried)
            carried = part_slots[:, -1]
            slots.append(part_slots.numpy())
            masks.append(part_masks.numpy())
        return np.concatenate(slots, 1), np.concatenate(masks, 1)

    def _encode(self, frames, slots):
        tracked = self.track(frames, slots, training=False)
        return tracked, self.decode(tracked)[1]
