"""Variational Sparse Gating (Jain et al., NeurIPS 2022): the RSSM with a stochastic binary update gate.

VSG: `h_t = g_t * ĉ_t + (1 - g_t) * h_{t-1}` with `g_t ~ Bernoulli(p_t)` from the gated cell, so each step
updates only some dimensions of the deterministic state. SVSG: no deterministic path; the cell runs on
the previous sample z_{t-1} and `z_t = g_t * s_t + (1 - g_t) * z_{t-1}`, `s_t ~ N(μ(ĉ_t), σ(ĉ_t))`.
Both add `gate_scale * max(mean_{b,t} Σ_i KL(Bern(p_{t,i}) || Bern(gate_prior)), gate_free)` to the
KL loss. The state adds `gate` (the binary sample g_t) and `gate_prob` (p_t), [B, D], both float32.
"""
import math

import tensorflow as tf

from vsg.cores.cell import GatedCell, gated_update
from vsg.cores.rssm import RSSM, gaussian_kl


class VSG(RSSM):

    def __init__(self, rng, deter, gate_prior, gate_scale, gate_free, cell_norm=False, **kwargs):
        """`cell_norm`: LayerNorm in the gated cell; the reference cell has none."""
        super().__init__(rng, deter, cell=GatedCell(deter, norm=cell_norm, rng=rng), **kwargs)
        self._gate_prior, self._gate_scale, self._gate_free = gate_prior, gate_scale, gate_free

    def initial(self, batch_size, training=False):
        return {**super().initial(batch_size), **self._initial_gate(batch_size)}

    def loss(self, post, prior):
        loss, metrics = super().loss(post, prior)
        gate_term, gate_metrics = self.gate_loss(post)
        return loss + gate_term, {**metrics, **gate_metrics}

    def gate_loss(self, post):
        """The gate KL term and its diagnostics (`gate_loss`)."""
        return gate_loss(post, self._gate_prior, self._gate_scale, self._gate_free)

    def _recur(self, x, prev_state, sample):
        cand, gate, prob = self._cell(x, prev_state['deter'], sample=sample)
        return {'deter': gated_update(gate, cand, prev_state['deter']), 'gate': gate, 'gate_prob': prob}

    def _initial_gate(self, batch_size):
        closed = tf.zeros([batch_size, self._cell.size])
        return {'gate': closed, 'gate_prob': closed}


class SVSG(VSG):
    """Gaussian latents only. The cell's output ĉ_t (`cand`) conditions prior and posterior; the feature
    is z_t alone. The KL is masked by the gate: closed dimensions copied z_{t-1} and sampled nothing."""

    _context = 'cand'

    def __init__(self, rng, stoch, hidden, act, min_std, **kwargs):
        # The cell's recurrent state is z_{t-1} itself, so the cell has the latent's size.
        super().__init__(rng, deter=stoch, hidden=hidden, stoch=stoch, discrete=0, act=act, min_std=min_std, **kwargs)

    @property
    def feat_size(self):
        return self._stoch

    @property
    def sizes(self):
        return {'stoch': self._stoch, 'hidden': self._hidden}

    def initial(self, batch_size, training=False):
        cand = {'cand': tf.zeros([batch_size, self._stoch])}
        return {**cand, **self._initial_latent(batch_size), **self._initial_gate(batch_size)}

    def get_feat(self, state):
        return state['stoch']

    def kl(self, lhs, rhs):
        # As in the paper's reference, the straight-through gate passes the mask's gradient to p:
        # a dimension whose update costs KL is pushed towards staying shut.
        return tf.reduce_sum(lhs['gate'] * gaussian_kl(lhs, rhs), -1)

    def _recur(self, x, prev_state, sample):
        cand, gate, prob = self._cell(x, prev_state['stoch'], sample=sample)
        return {'cand': cand, 'gate': gate, 'gate_prob': prob}

    def _latent(self, stats, recurrent, prev_state, sample):
        latent = super()._latent(stats, recurrent, prev_state, sample)
        latent['stoch'] = gated_update(recurrent['gate'], latent['stoch'], prev_state['stoch'])
        return latent


def gate_loss(post, prior, scale, free):
    """The gate KL of posterior states' gates [B, T, G] towards the sparse Bernoulli `prior`, summed over
    the G gates, averaged over the global batch and floored at `free` nats, times `scale`; and sparsity
    diagnostics, the update rate of each gate among them."""
    gate_kl = tf.reduce_mean(tf.reduce_sum(bernoulli_kl(post['gate_prob'], prior), -1))
    gate = tf.stop_gradient(post['gate'])
    open_fraction = tf.reduce_mean(gate, -1)  # Per batch entry and time step.
    metrics = {
        'gate_kl': gate_kl,
        'gate_open_mean': tf.reduce_mean(open_fraction),
        'gate_open_std': tf.math.reduce_std(open_fraction),
        'gate_update_rate': tf.reduce_mean(tf.reshape(gate, [-1, gate.shape[-1]]), 0)}
    return scale * tf.maximum(gate_kl, free), metrics


def bernoulli_kl(p, q):
    """KL(Bern(p) || Bern(q)) elementwise for a constant q in (0, 1); finite (and 0 * log 0 = 0) at p = 0 or 1."""
    return tf.math.xlogy(p, p) - p * math.log(q) + tf.math.xlogy(1 - p, 1 - p) - (1 - p) * math.log(1 - q)
