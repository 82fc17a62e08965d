"""Output distributions of the heads and the actor.

Losses read `log_prob`, behaviour reads `sample`/`mode`. The MSE, two-hot and binary heads are written
out because their log-likelihoods are a few lines each and we want their losses free of constants; the
actor uses TFP for the truncated normal, whose sampling and entropy are not one line.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from common.nets import symexp, symlog

tfd = tfp.distributions


def head_size(kind):
    """The output size of a scalar head predicting a `kind` distribution."""
    return TwoHot.BINS if kind == 'twohot' else 1


def head(kind, out):
    """The distribution of a scalar head's output `out` [..., head_size(kind)]."""
    if kind == 'twohot':
        return TwoHot(out)
    return {'mse': MSE, 'symlog_mse': SymlogMSE}[kind](out[..., 0], 0)


class MSE:
    """Unit-variance Gaussian over the last `dims` axes, log_prob without its constant."""

    def __init__(self, mean, dims):
        self.mean_ = mean
        self._axes = list(range(-dims, 0)) if dims else []

    def mode(self):
        return self.mean_

    def mean(self):
        return self.mean_

    def log_prob(self, value):
        return -0.5 * tf.reduce_sum(tf.square(value - self.mean_), self._axes)


class SymlogMSE:
    """MSE in symlog space (DreamerV3): `pred` is symlog of the value, the mean its symexp."""

    def __init__(self, pred, dims):
        self._symlog = MSE(pred, dims)

    def mean(self):
        return symexp(self._symlog.mean())

    mode = mean

    def log_prob(self, value):
        return self._symlog.log_prob(symlog(value))


class TwoHot:
    """A scalar as a categorical over `BINS` bins spaced evenly in symlog space over [LOW, HIGH]
    (DreamerV3): the value is the symexp of the expected bin, the log-likelihood of a value is the
    cross-entropy against its two-hot encoding, so the loss does not grow with the value's scale."""

    BINS, LOW, HIGH = 255, -20.0, 20.0

    def __init__(self, logits):
        self.logits = logits
        self.bins = tf.linspace(self.LOW, self.HIGH, self.BINS)

    def mean(self):
        return symexp(tf.reduce_sum(tf.nn.softmax(self.logits) * self.bins, -1))

    mode = mean  # DreamerV3's mode of this head is also the expected value.

    def log_prob(self, value):
        return tf.reduce_sum(self.encode(symlog(value)) * tf.nn.log_softmax(self.logits), -1)

    @classmethod
    def encode(cls, x):
        """The two-hot encoding [..., BINS] of `x` (in the bins' symlog scale): weights on the two bins
        around x that sum to 1 and split linearly by distance; x beyond the ends goes to the end bin."""
        step = (cls.HIGH - cls.LOW) / (cls.BINS - 1)
        position = (tf.clip_by_value(x, cls.LOW, cls.HIGH) - cls.LOW) / step
        below = tf.clip_by_value(tf.floor(position), 0, cls.BINS - 2)
        above = position - below  # the upper bin's weight, in [0, 1]
        index = tf.cast(below, tf.int32)
        return tf.one_hot(index, cls.BINS) * (1 - above)[..., None] + tf.one_hot(index + 1, cls.BINS) * above[..., None]


class Binary:
    """Bernoulli from logits (the continue head)."""

    def __init__(self, logits):
        self.logits = logits

    def mean(self):
        return tf.sigmoid(self.logits)

    def mode(self):
        return tf.cast(self.logits > 0, self.logits.dtype)

    def log_prob(self, value):
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=value, logits=self.logits)


def unimix(logits, fraction):
    """Logits of (1 - fraction) softmax(logits) + fraction / K over the last axis (K classes): every
    class keeps at least fraction / K, so KL and log-probabilities stay bounded (DreamerV3)."""
    if not fraction:
        return logits
    return tf.math.log((1 - fraction) * tf.nn.softmax(logits) + fraction / logits.shape[-1])


class OneHot(tfd.OneHotCategorical):
    """One-hot categorical whose samples pass straight-through gradients to the probabilities."""

    def __init__(self, logits):
        super().__init__(logits=logits, dtype=tf.float32)

    def sample(self, sample_shape=(), seed=None):
        sample = super().sample(sample_shape, seed=seed)
        probs = self.probs_parameter()
        return sample + probs - tf.stop_gradient(probs)


def trunc_normal(mean, std_logits, min_std, shift=0.0):
    """DreamerV2's continuous actor: tanh mean, std in [min_std, 2 + min_std], support [-1, 1].

    `shift` moves the halved std logits (`std_logit_shift`), so that a freshly initialised actor explores
    with a chosen std; at 0 the std at zero logits is DreamerV2's 1 + min_std.
    """
    std = 2 * tf.sigmoid(std_logits / 2 + shift) + min_std
    return tfd.Independent(ReparameterizedTruncatedNormal(tf.tanh(mean), std, -1.0, 1.0), 1)


def std_logit_shift(init_std, min_std):
    """The shift of the halved std logits that puts the std at `init_std` when the logits are 0."""
    if not min_std < init_std < 2 + min_std:
        raise ValueError(f'actor.init_std must lie strictly between actor.min_std ({min_std}) and '
                         f'2 + actor.min_std ({2 + min_std}); got {init_std}')
    fraction = (init_std - min_std) / 2
    return float(np.log(fraction / (1 - fraction)))


class ReparameterizedTruncatedNormal(tfd.TruncatedNormal):
    """TFP's TruncatedNormal with two repairs for the actor.

    * Gradients. On TensorFlow 2.21 / TFP 0.25 a sample taken on its own passes no gradient to loc and
      scale, and TensorFlow's registered rule for the sampler (d sample / d loc = 1, d sample / d scale =
      the standardised sample) leaves out that the bounds are fixed while loc and scale move: near a bound
      it keeps pushing the mean outwards although the sample can no longer follow, which drove
      dynamics-gradient actors onto the action bounds. Samples get the full implicit reparameterisation
      gradient (Figurnov et al., 2018) of x = F^-1(u; loc, scale) at fixed u, with z, alpha, beta the
      standardised sample and bounds and c = F(x):
          d x / d loc   = 1 - d_low - d_high
          d x / d scale = z - alpha d_low - beta d_high,
          d_low = (1 - c) exp((z^2 - alpha^2) / 2),  d_high = c exp((z^2 - beta^2) / 2).
    * Bounds. The sampler can return a value one rounding step outside [low, high], where log_prob is
      -inf (a rare non-finite REINFORCE loss stopped two runs): samples are moved `INSIDE` within the
      bounds with a straight-through gradient.
    """

    INSIDE = 1e-6

    def _sample_n(self, n, seed=None):
        sample = tf.stop_gradient(super()._sample_n(n, seed=seed))
        sample = tf.clip_by_value(sample, self.low + self.INSIDE, self.high - self.INSIDE)
        d_loc, d_scale = map(tf.stop_gradient, self._sample_derivatives(sample))
        loc, scale = self.loc, self.scale
        return sample + (loc - tf.stop_gradient(loc)) * d_loc + (scale - tf.stop_gradient(scale)) * d_scale

    def _sample_derivatives(self, sample):
        """(d x / d loc, d x / d scale) at fixed u, for samples x inside the bounds."""
        loc, scale = self.loc, self.scale
        z, alpha, beta = (sample - loc) / scale, (self.low - loc) / scale, (self.high - loc) / scale
        ndtr = tfp.bijectors.NormalCDF().forward  # Phi; tf has no ndtr of its own
        # alpha <= 0 <= beta whenever loc lies inside the bounds (the tanh mean does), so the
        # denominator is at least 1/2 - Phi(-|.|) and the difference does not cancel.
        c = (ndtr(z) - ndtr(alpha)) / (ndtr(beta) - ndtr(alpha))
        # In logs, so that a factor near 0 times one that overflows stays finite.
        c = tf.clip_by_value(c, np.finfo(np.float32).tiny, 1 - np.finfo(np.float32).eps)
        d_low = tf.exp(tf.math.log1p(-c) + 0.5 * (z ** 2 - alpha ** 2))
        d_high = tf.exp(tf.math.log(c) + 0.5 * (z ** 2 - beta ** 2))
        return 1 - d_low - d_high, z - alpha * d_low - beta * d_high
