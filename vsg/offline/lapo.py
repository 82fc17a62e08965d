"""Latent action model (LAPO, Schmidt & Jiang 2024): an inverse dynamics model z_t = IDM(o_t, o_{t+k})
and a forward model ô_{t+k} = FDM(o_t, z_t), trained together to predict the future observation
through an information bottleneck on z (vector quantisation, a small continuous latent, or a Gaussian
latent whose KL to N(0, I) is penalised), so that z comes to hold what the observation cannot tell:
the action. No true action is used.
"""
import keras
import tensorflow as tf

from common import nets


IMAGE_ENCODERS = {'conv': nets.ConvEncoder, 'keypoints': nets.KeypointEncoder}


def encoder(kind, depth, act, name, image='conv'):
    """Flat features of one model input: for images the encoder named `image` (IMAGE_ENCODERS), for
    vectors an identity flatten (an MLP follows either way)."""
    if kind == 'image':
        return IMAGE_ENCODERS[image](depth, act, name=name)
    return keras.layers.Flatten(name=name)


class PooledConvEncoder(keras.layers.Layer):
    """Conv features max-pooled over the image (offline.lapo.idm_pool): three stride-2 convolutions
    (64 -> 8 pixels), a 1x1 one, then the maximum of each channel over the 8x8 positions. What a
    channel reports survives, where in the frame it happened does not, so the IDM can say how
    something moved (the action) but hardly where it ended up (the frame)."""

    def __init__(self, depth, act, **kwargs):
        super().__init__(**kwargs)
        self._convs = [keras.layers.Conv2D(depth * 2 ** i, 4, 2, padding='same', activation=act) for i in range(3)]
        self._mix = keras.layers.Conv2D(depth * 8, 1, activation=act)

    def call(self, image):
        x = tf.cast(image, self.compute_dtype) / 255 - 0.5
        for conv in self._convs:
            x = conv(x)
        return tf.cast(tf.reduce_max(self._mix(x), [1, 2]), tf.float32)


def as_target(kind, x):
    """An input in the scale the forward model predicts: images in [-0.5, 0.5] as ConvDecoder's."""
    if kind == 'image':
        return tf.cast(x, tf.float32) / 255 - 0.5
    return tf.cast(x, tf.float32)


class VectorQuantizer(keras.layers.Layer):
    """Splits z into `groups` parts, each replaced by the nearest of `codes` vectors of its own
    codebook. The codebooks follow exponential moving averages of the inputs assigned to them
    (Laplace-smoothed counts, van den Oord et al. 2017); the output passes the gradient straight
    through to the input; `commitment` is the mean squared distance of the input to its code.

    The first training batch places the codes at random inputs of it (codes drawn far from the
    inputs would leave all but one unused), and a code whose averaged count falls below `dead_usage`
    is restarted at a random input of the batch (0: never). Counts start at 1 and sums at the codes,
    so an unused code stays where it is.
    """

    def __init__(self, groups, codes, decay=0.99, eps=1e-5, dead_usage=0.0, **kwargs):
        # Always float32, whatever the dtype policy: nearest-code distances of close codes cancel in
        # 16 bits (and the EMA's updates would mix dtypes).
        super().__init__(dtype='float32', **kwargs)
        self.groups, self.codes, self.decay, self.eps, self.dead_usage = groups, codes, decay, eps, dead_usage

    def build(self, shape):
        if shape[-1] % self.groups:
            raise ValueError(f'latent size {shape[-1]} must be a multiple of the {self.groups} groups')
        dim = shape[-1] // self.groups
        init = keras.initializers.RandomUniform(-1.0, 1.0)
        self.codebook = self.add_weight(shape=(self.groups, self.codes, dim), initializer=init, trainable=False, name='codebook')
        self.counts = self.add_weight(shape=(self.groups, self.codes), initializer='ones', trainable=False, name='counts')
        self.sums = self.add_weight(shape=(self.groups, self.codes, dim), initializer='zeros', trainable=False, name='sums')
        self.sums.assign(self.codebook)
        self.placed = self.add_weight(shape=(), initializer='zeros', trainable=False, name='placed')

    def call(self, x, training=False):
        """Returns (quantised z, commitment loss, code indices [B, groups])."""
        flat = tf.reshape(x, [-1, self.groups, x.shape[-1] // self.groups])  # [N, G, d]
        if training:
            self._place(flat)
        distances = (tf.reduce_sum(flat ** 2, -1, keepdims=True)
                     - 2 * tf.einsum('ngd,gkd->ngk', flat, self.codebook)
                     + tf.reduce_sum(self.codebook ** 2, -1)[None])
        index = tf.argmin(distances, -1, output_type=tf.int32)  # [N, G]
        quantised = tf.reshape(self._lookup(index), tf.shape(x))  # the codes before this batch's update
        if training:
            self._update(flat, index)
        commitment = tf.reduce_mean((x - tf.stop_gradient(quantised)) ** 2)
        return x + tf.stop_gradient(quantised - x), commitment, tf.reshape(index, tf.concat([tf.shape(x)[:-1], [self.groups]], 0))

    def _lookup(self, index):
        onehot = tf.one_hot(index, self.codes)  # [N, G, K]
        return tf.einsum('ngk,gkd->ngd', onehot, self.codebook)

    def _random_inputs(self, flat):
        """[G, K, d]: for each group and code, a random row of the batch."""
        pick = tf.random.uniform([self.groups, self.codes], 0, tf.shape(flat)[0], tf.int32)
        return tf.gather(tf.transpose(flat, [1, 0, 2]), pick, batch_dims=1)

    def _place(self, flat):
        """On the first training batch only: codes at random inputs (tiny noise splits repeats)."""
        first = self.placed < 0.5
        noise = tf.random.normal(tf.shape(self.codebook), stddev=1e-3)
        codes = tf.where(first, self._random_inputs(flat) * (1 + noise) + noise, self.codebook)
        self.codebook.assign(codes)
        self.sums.assign(tf.where(first, codes, self.sums))
        self.placed.assign(1.0)

    def _update(self, flat, index):
        onehot = tf.one_hot(index, self.codes)  # [N, G, K]
        counts = self.decay * self.counts + (1 - self.decay) * tf.reduce_sum(onehot, 0)
        sums = self.decay * self.sums + (1 - self.decay) * tf.einsum('ngk,ngd->gkd', onehot, flat)
        total = tf.reduce_sum(counts, -1, keepdims=True)
        smoothed = (counts + self.eps) / (total + self.codes * self.eps) * total
        codebook = sums / smoothed[..., None]
        if self.dead_usage > 0:
            dead = counts < self.dead_usage  # [G, K]
            fresh = self._random_inputs(flat)
            codebook = tf.where(dead[..., None], fresh, codebook)
            sums = tf.where(dead[..., None], fresh, sums)
            counts = tf.where(dead, tf.ones_like(counts), counts)
        self.counts.assign(counts)
        self.sums.assign(sums)
        self.codebook.assign(codebook)


class IDM(keras.layers.Layer):
    """z_t from the stacked inputs up to o_t and the future one o_{t+k}, concatenated on the last axis.

    Latents: `vq` (codes), `continuous` (tanh) or `gaussian`: z ~ N(μ, σ) while training and μ
    otherwise, with the KL to N(0, I) as its bottleneck loss. That KL bounds what z tells about its
    inputs, so of two codes that explain the frame equally well it favours the narrower one: the move
    (a small displacement) over where things end up (anywhere in the frame)."""

    def __init__(self, kind, latent, latent_size, groups, codes, decay, dead_usage, depth, units, layers, act,
                 pool=False, **kwargs):
        """pool: image features max-pooled over positions (PooledConvEncoder) instead of flattened."""
        super().__init__(**kwargs)
        self.latent = latent
        if pool and kind == 'image':
            self._encoder = PooledConvEncoder(depth, act, name='pooled_encoder')
        else:
            self._encoder = encoder(kind, depth, act, 'encoder')
        self._head = nets.MLP(layers, units, act, 2 * latent_size if latent == 'gaussian' else latent_size, name='head')
        if latent == 'vq':
            self.quantizer = VectorQuantizer(groups, codes, decay, dead_usage=dead_usage, name='vq')

    def call(self, stacked, future, training=False):
        """Returns (z [B, latent_size], bottleneck loss: VQ's commitment, the Gaussian's KL or 0, code
        indices or None). The encoder also sees the change from o_t to o_{t+k}, where an action shows
        (images: in [-255, 255] before scaling)."""
        current = tf.cast(stacked[..., -future.shape[-1]:], tf.float32)
        change = tf.cast(future, tf.float32) - current
        x = self._head(self._encoder(tf.concat([tf.cast(stacked, tf.float32), tf.cast(future, tf.float32), change], -1)))
        if self.latent == 'vq':
            return self.quantizer(x, training=training)
        if self.latent == 'gaussian':
            mean, raw_std = tf.split(x, 2, -1)
            std = tf.nn.softplus(raw_std) + 1e-3
            z = mean + std * tf.random.normal(tf.shape(mean)) if training else mean
            return z, tf.reduce_mean(tf.reduce_sum(standard_normal_kl(mean, std), -1)), None
        return tf.tanh(x), tf.constant(0.0), None


def standard_normal_kl(mean, std):
    """KL(N(mean, std) || N(0, 1)) per dimension."""
    return 0.5 * (tf.square(mean) + tf.square(std) - 1) - tf.math.log(std)


def _broadcast(z, like):
    """z [B, Z] repeated over the spatial positions of `like` [B, H, W, C]: [B, H, W, Z]."""
    shape = tf.shape(like)
    return tf.broadcast_to(z[:, None, None, :], tf.stack([shape[0], shape[1], shape[2], z.shape[-1]]))


class UNet(keras.layers.Layer):
    """The image FDM's change map (LAPO's forward model): a conv encoder halving the resolution four
    times (64 -> 4 pixels, 'same' padding), z joined to the bottleneck and broadcast to every decoder
    level, and transposed convolutions back up, each level joined by a skip connection to the encoder's
    feature map of its resolution (the top one: the input frames themselves). So o_t reaches the output
    at full resolution and z only has to say what changes. The output convolution starts at zero: an
    untrained U-Net predicts no change at all.

    Returns [B, 64, 64, channels] in the scale of `as_target`.
    """

    def __init__(self, depth, act, channels, **kwargs):
        super().__init__(**kwargs)
        widths = [depth * 2 ** i for i in range(4)]  # 32, 16, 8, 4 pixels
        self._down = [keras.layers.Conv2D(width, 4, 2, padding='same', activation=act) for width in widths]
        self._middle = keras.layers.Conv2D(widths[-1], 3, padding='same', activation=act)
        ups = [*widths[-2::-1], depth]  # 8, 16, 32, 64 pixels
        self._up = [keras.layers.Conv2DTranspose(width, 4, 2, padding='same', activation=act) for width in ups]
        self._merge = [keras.layers.Conv2D(width, 3, padding='same', activation=act) for width in ups]
        self._out = keras.layers.Conv2D(channels, 3, padding='same', kernel_initializer='zeros', name='change')

    def call(self, stacked, z):
        x = as_target('image', stacked)
        skips = []
        for conv in self._down:
            skips.append(x)
            x = conv(x)
        x = self._middle(tf.concat([x, _broadcast(z, x)], -1))
        for up, merge, skip in zip(self._up, self._merge, reversed(skips)):
            x = up(tf.concat([x, _broadcast(z, x)], -1))
            x = merge(tf.concat([x, skip], -1))
        return tf.cast(self._out(x), tf.float32)


class FDM(keras.layers.Layer):
    """ô_{t+k} from the stacked inputs up to o_t and z_t, predicted as o_t plus a change: the static
    scene then costs nothing and the loss is about what moved, which z has to explain.

    `net` ('unet' or 'vector', offline.lapo.fdm) picks the image model: the U-Net, or the conv encoder's
    one vector joined with z and decoded by ConvDecoder (the first design: it has to redraw the whole
    change from that vector). Vector inputs always go through an MLP."""

    def __init__(self, kind, target_shape, net, depth, units, layers, act, **kwargs):
        super().__init__(**kwargs)
        self._kind = kind
        self._target_shape = tuple(target_shape)
        self._unet = None
        if kind == 'image' and net == 'unet':
            self._unet = UNet(depth, act, target_shape[-1], name='unet')
            return
        self._encoder = encoder(kind, depth, act, 'encoder')
        if kind == 'image':
            self._decoder = nets.ConvDecoder(depth, act, channels=target_shape[-1], name='decoder')
        else:
            size = int(tf.reduce_prod(target_shape))
            self._decoder = nets.MLP(layers, units, act, size, name='decoder')

    def call(self, stacked, z):
        if self._unet is not None:
            change = self._unet(stacked, z)
        else:
            change = tf.reshape(self._decoder(tf.concat([self._encoder(stacked), z], -1)), [-1, *self._target_shape])
        return as_target(self._kind, stacked[..., -self._target_shape[-1]:]) + change


class LatentActionModel(keras.layers.Layer):
    """The IDM and FDM under one name, so that checkpoints key them as lapo/idm/... and lapo/fdm/..."""

    def __init__(self, kind, target_shape, net, lapo, **kwargs):
        """net, lapo: the config blocks offline.net and offline.lapo."""
        super().__init__(name='lapo', **kwargs)
        self.kind = kind
        self.bottleneck_scale = {'vq': lapo.commitment, 'gaussian': lapo.kl}.get(lapo.latent, 0.0)
        # Free nats: a Gaussian z may carry kl_free nats at no cost (without them it collapses to the
        # prior before the FDM has learned to use it); beyond them each nat costs `kl`.
        self.bottleneck_free = lapo.kl_free if lapo.latent == 'gaussian' else 0.0
        self.idm = IDM(kind, lapo.latent, lapo.latent_size, lapo.groups, lapo.codes, lapo.ema_decay, lapo.dead_usage,
                       net.depth, net.units, net.layers, net.act, pool=lapo.idm_pool, name='idm')
        self.fdm = FDM(kind, target_shape, lapo.fdm, net.depth, net.units, net.layers, net.act, name='fdm')

    def call(self, stacked, future, training=False):
        z, bottleneck, index = self.idm(stacked, future, training=training)
        return self.fdm(stacked, z), z, bottleneck, index

    def loss(self, stacked, future, training=True):
        """`training=False` for held-out batches: the codebook then stays as it is and a Gaussian z is
        its mean. The bottleneck term is weighted by offline.lapo.commitment (vq) or offline.lapo.kl
        (gaussian, floored at offline.lapo.kl_free nats)."""
        prediction, z, bottleneck, index = self(stacked, future, training=training)
        reconstruction = tf.reduce_mean((prediction - as_target(self.kind, future)) ** 2)
        name = 'kl' if self.idm.latent == 'gaussian' else 'commitment'
        metrics = {'reconstruction': reconstruction, name: bottleneck, 'z_std': tf.math.reduce_std(z)}
        if index is not None:
            metrics['codes_used'] = _distinct_codes(index)
        return reconstruction + self.bottleneck_scale * tf.maximum(bottleneck, self.bottleneck_free), metrics


def _distinct_codes(index):
    """Distinct codes in the batch, averaged over groups."""
    index = tf.reshape(index, [-1, index.shape[-1]])
    used = [tf.size(tf.unique(index[:, g])[0]) for g in range(index.shape[-1])]
    return tf.reduce_mean(tf.cast(tf.stack(used), tf.float32))
