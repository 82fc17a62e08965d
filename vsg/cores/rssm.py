"""Recurrent state-space model (DreamerV2), discrete (`discrete > 0`) or Gaussian latents: a Core
(vsg/cores/base.py).

State dict: `deter` [B, D], `stoch` [B, S, K] (one-hot) or [B, S], and the distribution stats
that produced `stoch`: `logits` [B, S, K] or `mean`/`std` [B, S]. All state tensors are float32
whatever the compute precision, so the scans carry one dtype.

Variants (vsg.cores.vsg) reuse the scans, stats, sampling, KL and resets and override the hooks:
`_recur` (the recurrent part of a step), `_latent` (the stochastic part from its stats) and
`_context` (the state entry the stats are computed from).
"""
import math

import keras
import tensorflow as tf

from common import dists, replicas
from vsg.cores.base import Core
from vsg.cores.cell import GatedCell, gated_update


def _dense(units, act=None):
    return keras.layers.Dense(units, activation=act)


class RSSM(Core):

    _context = 'deter'  # The state entry the prior and posterior stats are computed from: h_t.

    def __init__(self, rng, deter, hidden, stoch, discrete, act, min_std, kl_balance, kl_free, kl_split=False,
                 kl_dyn=0.5, kl_rep=0.1, unimix=0.0, cell=None, **kwargs):
        """`cell` defaults to DreamerV2's LayerNorm GRU (a GatedCell with the soft gate). `kl_*`: see
        `loss`. `unimix`: the fraction of uniform mixed into discrete latents' probabilities (dists.unimix);
        Gaussian latents ignore it."""
        super().__init__(**kwargs)
        self._rng = rng
        self._deter, self._hidden, self._stoch, self._discrete = deter, hidden, stoch, discrete
        self._min_std = min_std
        self._kl_balance, self._kl_free = kl_balance, kl_free
        self._kl_split, self._kl_dyn, self._kl_rep = kl_split, kl_dyn, kl_rep
        self._unimix = unimix
        stats_size = stoch * discrete if discrete else 2 * stoch
        self._img_in = _dense(hidden, act)
        self._cell = cell or GatedCell(deter)
        self._img_out = _dense(hidden, act)
        self._img_stats = _dense(stats_size)
        self._obs_out = _dense(hidden, act)
        self._obs_stats = _dense(stats_size)

    @property
    def feat_size(self):
        return self._stoch * (self._discrete or 1) + self._deter

    @property
    def sizes(self):
        return {'deter': self._deter, 'stoch': self._stoch, 'discrete': self._discrete}

    def initial(self, batch_size, training=False):
        return {'deter': tf.zeros([batch_size, self._deter]), **self._initial_latent(batch_size)}

    def obs_step(self, prev_state, prev_action, embed, is_first, sample=True):
        prev_state, prev_action = reset_at_first(prev_state, prev_action, is_first, self.initial)
        prior = self.img_step(prev_state, prev_action, sample)
        x = self._obs_out(tf.concat([prior[self._context], embed], -1))
        stats = self._stats(self._obs_stats(x))
        # The posterior keeps the prior's recurrent part (h_t, and a gated core's gate).
        post = {**prior, **self._latent(stats, prior, prev_state, sample)}
        return post, prior

    def img_step(self, prev_state, prev_action, sample=True):
        x = self._img_in(tf.concat([self._flat_stoch(prev_state['stoch']), prev_action], -1))
        recurrent = self._recur(x, prev_state, sample)
        stats = self._stats(self._img_stats(self._img_out(recurrent[self._context])))
        return {**recurrent, **self._latent(stats, recurrent, prev_state, sample)}

    def get_feat(self, state):
        return tf.concat([self._flat_stoch(state['stoch']), state['deter']], -1)

    def loss(self, post, prior):
        """The KL loss (`kl_loss`) and the KL and entropies as metrics."""
        loss, dyn = kl_loss(self.kl, post, prior, self._kl_balance, self._kl_free, self._kl_split, self._kl_dyn,
                            self._kl_rep)
        metrics = {
            'kl': tf.reduce_mean(dyn),
            'prior_ent': tf.reduce_mean(self.entropy(prior)),
            'post_ent': tf.reduce_mean(self.entropy(post))}
        return loss, metrics

    def kl(self, lhs, rhs):
        """KL(lhs || rhs) summed over the latent dimensions."""
        if self._discrete:
            logp, logq = tf.nn.log_softmax(lhs['logits']), tf.nn.log_softmax(rhs['logits'])
            return tf.reduce_sum(tf.exp(logp) * (logp - logq), [-2, -1])
        return tf.reduce_sum(gaussian_kl(lhs, rhs), -1)

    def entropy(self, state):
        if self._discrete:
            logp = tf.nn.log_softmax(state['logits'])
            return -tf.reduce_sum(tf.exp(logp) * logp, [-2, -1])
        return tf.reduce_sum(gaussian_entropy(state['std']), -1)

    def _recur(self, x, prev_state, sample):
        """The recurrent part of the next state, from the input `x` = f(z_{t-1}, a_{t-1})."""
        cand, gate, _ = self._cell(x, prev_state['deter'], sample=sample)
        return {'deter': gated_update(gate, cand, prev_state['deter'])}

    def _latent(self, stats, recurrent, prev_state, sample):
        """The stochastic part of the next state from its stats; `recurrent` holds this step's `_recur` entries."""
        return {'stoch': self._sample(stats, sample), **stats}

    def _initial_latent(self, batch_size):
        if self._discrete:
            zeros = tf.zeros([batch_size, self._stoch, self._discrete])
            return {'stoch': zeros, 'logits': zeros}
        zeros = tf.zeros([batch_size, self._stoch])
        return {'stoch': zeros, 'mean': zeros, 'std': tf.ones_like(zeros)}

    def _flat_stoch(self, stoch):
        if not self._discrete:
            return stoch
        return tf.reshape(stoch, tf.concat([tf.shape(stoch)[:-2], [self._stoch * self._discrete]], 0))

    def _stats(self, out):
        out = tf.cast(out, tf.float32)
        if self._discrete:
            # Mixed into the stats themselves, so sampling, KL and entropy all see the same distribution.
            return {'logits': dists.unimix(tf.reshape(out, [-1, self._stoch, self._discrete]), self._unimix)}
        mean, std = tf.split(out, 2, -1)
        return {'mean': mean, 'std': gaussian_std(std, self._min_std)}

    def _sample(self, stats, sample):
        if self._discrete:
            logits = stats['logits']
            if sample:  # Gumbel-max draws a class; the straight-through term carries gradients.
                uniform = self._rng.uniform(tf.shape(logits), 1e-6, 1 - 1e-6)
                index = tf.argmax(logits - tf.math.log(-tf.math.log(uniform)), -1)
            else:
                index = tf.argmax(logits, -1)
            probs = tf.nn.softmax(logits)
            return tf.one_hot(index, self._discrete) + probs - tf.stop_gradient(probs)
        return gaussian_sample(stats, self._rng, sample)


def kl_loss(kl, post, prior, balance, free, split, dyn_scale, rep_scale):
    """(loss, the KL per step) of posterior and prior sequences, `kl(lhs, rhs)` giving KL(lhs || rhs)
    per step [B, T]. KL(post || prior) in two directions: `dyn` (the prior learns, the posterior held
    fixed) and `rep` (the posterior learns). Balanced (DreamerV2): (1 - balance) rep + balance dyn,
    each floored at `free` nats after averaging over time and the global batch (all replicas' shards).
    Split (DreamerV3): dyn_scale dyn + rep_scale rep, each floored at `free` per batch element and time
    step before averaging, so steps already under the floor stop pulling and the others still do."""
    sg = lambda state: tf.nest.map_structure(tf.stop_gradient, state)
    rep = kl(post, sg(prior))
    dyn = kl(sg(post), prior)
    if split:
        loss = dyn_scale * tf.reduce_mean(tf.maximum(dyn, free))
        loss += rep_scale * tf.reduce_mean(tf.maximum(rep, free))
    else:
        loss = (1 - balance) * replicas.floor(tf.reduce_mean(rep), free)
        loss += balance * replicas.floor(tf.reduce_mean(dyn), free)
    return loss, dyn


def gaussian_std(logits, min_std):
    """A latent's std from its logits: in (min_std, 2 + min_std), 1 + min_std at 0."""
    return 2 * tf.sigmoid(logits / 2) + min_std


def gaussian_sample(stats, rng, sample):
    """A draw from `rng` of the diagonal Gaussian `stats` (`mean`/`std`), or its mean if not `sample`."""
    if not sample:
        return stats['mean']
    return stats['mean'] + stats['std'] * rng.normal(tf.shape(stats['mean']))


def gaussian_entropy(std):
    """The entropy per dimension of a Gaussian of `std`."""
    return 0.5 * math.log(2 * math.pi * math.e) + tf.math.log(std)


def gaussian_kl(lhs, rhs):
    """KL(lhs || rhs) per dimension of diagonal Gaussians given as `mean`/`std` dicts."""
    var_ratio = tf.square(lhs['std'] / rhs['std'])
    mahalanobis = tf.square((lhs['mean'] - rhs['mean']) / rhs['std'])
    return 0.5 * (var_ratio + mahalanobis - 1 - tf.math.log(var_ratio))


def reset_at_first(state, action, is_first, initial):
    """Starts from the state `initial(batch_size)` and a zero action where an episode begins."""
    keep = 1 - tf.cast(is_first, tf.float32)
    fresh = initial(tf.shape(action)[0])
    mix = lambda old, new: _broadcast(keep, old) * old + (1 - _broadcast(keep, old)) * new
    return tf.nest.map_structure(mix, state, fresh), _broadcast(keep, action) * action


def _broadcast(mask, like):
    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))
