"""The slot core (docs/design.md, "The slot core"): a recurrent state-space model over K object slots,
after SOLD and SAVi, and a Core (vsg/cores/base.py) that brings its own encoder and decoder: the slot
model's (vsg/slots/model.py), trained from scratch or loaded pre-trained by name (vsg.slots.load).

State dict, all float32, K = slots.num_slots, D = slots.slot_size: `deter` [B, K, D], each slot's
recurrent state h_k; `stoch` [B, K, D], each slot's latent z_k, in the slot model's slot space (what
its decoder reads); `mean`/`std` [B, K, D], the Gaussian z_k was drawn from; with the gate also
`gate` and `gate_prob` [B, K], one update gate per slot.

Prior (`img_step`): a token per slot, Dense([z_k, h_k]), and one for the action pass a transformer
block across the slots (the slot model's Predictor layer); the gated cell, shared by the slots, folds
each slot's output into h_k, and z_k's Gaussian comes from h_k. Posterior (`obs_step`): slot attention
over the frame's tokens. With `slots.carry` (SAVi's way) it starts from the prior's mean slots (from the
initial slots, with the slot model's first-frame iterations, where an episode begins), so slot k keeps to
the object it found; without (the slot model's default) every frame starts from the learned initial
slots with the first-frame iterations, as the slot model was trained, so slot k keeps to the kind of
object the model gave it. The inferred slot is the posterior's mean, its std comes from [h_k, slot]. The KL is summed over slots and
dimensions, so it is the distance between the predicted and the inferred slots. Features
(`get_feat`): the slots [h_k, z_k] pooled by attention from a learned query (`SlotPool`), the same
whatever the slots' order; the decoder reads the slots themselves (`decoder_input`).

Gate: the cell has one binary update gate per slot (VSG's, vsg/cores/cell.py); a shut slot keeps
`deter` and `stoch` exactly and its KL is masked, as SVSG's dimensions are; the gate KL is VSG's.
"""
import keras
import tensorflow as tf

from common import nets, video
from vsg import slots as slot_models
from vsg.cores.base import Core
from vsg.cores.cell import GatedCell, gated_update
from vsg.cores.rssm import gaussian_entropy, gaussian_kl, gaussian_sample, gaussian_std, kl_loss, reset_at_first
from vsg.cores.vsg import gate_loss
from vsg.learner import dtype_policy
from vsg.slots.model import Predictor, SlotModel


class SlotCore(Core):

    def __init__(self, rng, sizes, hidden, heads, act, min_std, gate, pretrained, finetune, kl_balance, kl_free,
                 kl_split, kl_dyn, kl_rep, gate_prior, gate_scale, gate_free, cell_norm, **kwargs):
        """`sizes`: the slot model's SlotConfig (the `slots` block). `hidden`: units of the prior's and the
        posterior's MLPs; `heads`: attention heads of the prior and the pooling. `gate`: one binary update
        gate per slot, with VSG's `gate_*` and `cell_norm`. `pretrained`: a vsg.slots logdir or checkpoint
        whose encoder, slot attention, initial slots and decoder start the core ('': from scratch), frozen
        unless `finetune`. `kl_*` as the RSSM's. Raises ValueError (one line) for sizes that do not fit."""
        super().__init__(**kwargs)
        _check(sizes, heads, pretrained, finetune)
        self._rng, self._sizes, self._gated = rng, sizes, gate
        self._hidden, self._min_std = hidden, min_std
        self._kl = dict(balance=kl_balance, free=kl_free, split=kl_split, dyn_scale=kl_dyn, rep_scale=kl_rep)
        self._gate_settings = (gate_prior, gate_scale, gate_free)
        model = _slot_model(sizes, pretrained)
        # Its predictor is left out: the prior plays that part, with the action.
        self.slot_encoder, self.slot_attention, self.slot_init, self.slot_decoder = (
            model.encoder, model.attention, model.init, model.decoder)
        for part in (self.slot_encoder, self.slot_attention, self.slot_init, self.slot_decoder):
            part.trainable = finetune
        size = sizes.slot_size
        self._img_in = keras.layers.Dense(size, name='img_in')
        self._action_in = keras.layers.Dense(size, name='action_in')
        self._prior = Predictor(size, heads, hidden, name='prior')
        self._cell = GatedCell(size, norm=cell_norm if gate else True, rng=rng if gate else None,
                               gates=1 if gate else None, name='cell')
        self._img_stats = nets.MLP(1, hidden, act, 2 * size, name='img_stats')
        self._obs_std = nets.MLP(1, hidden, act, size, name='obs_std')
        self._pool = SlotPool(2 * size, heads, name='pool')

    @property
    def feat_size(self):
        return 2 * self._sizes.slot_size

    @property
    def sizes(self):
        return {'slots': self._sizes.num_slots, 'slot_size': self._sizes.slot_size, 'tokens': self._sizes.tokens ** 2,
                'hidden': self._hidden, 'gate': int(self._gated)}

    def initial(self, batch_size, training=False):
        """The learned initial slots as latents (drawn around their means in training) and zero recurrent
        states; closed gates."""
        shape = [batch_size, self._sizes.num_slots, self._sizes.slot_size]
        noise = self._rng.normal(shape) if training else None
        # A Keras layer takes its positional inputs as tensors.
        slots = self.slot_init(tf.convert_to_tensor(batch_size), training=training, noise=noise)
        state = {'deter': tf.zeros(shape), 'stoch': slots, 'mean': slots, 'std': tf.ones(shape)}
        if self._gated:
            state.update(gate=tf.zeros(shape[:2]), gate_prob=tf.zeros(shape[:2]))
        return state

    def img_step(self, prev_state, prev_action, sample=True):
        slots = self._img_in(tf.concat([prev_state['stoch'], prev_state['deter']], -1))
        tokens = tf.concat([slots, self._action_in(prev_action)[:, None]], 1)
        x = self._prior(tokens)[:, :-1]  # The slots' outputs; the action's token is only attended to.
        cand, gate, prob = self._cell(x, prev_state['deter'], sample=sample)
        deter = gated_update(gate, cand, prev_state['deter'])
        mean, std = tf.split(self._img_stats(deter), 2, -1)
        prior = {'deter': deter, **self._latent(mean, gaussian_std(std, self._min_std), gate, prev_state, sample)}
        if self._gated:
            prior.update(gate=gate[..., 0], gate_prob=prob[..., 0])
        return prior

    def obs_step(self, prev_state, prev_action, embed, is_first, sample=True):
        # Sampled initial slots in training, as the slot model's; their means otherwise.
        prev_state, prev_action = reset_at_first(prev_state, prev_action, is_first,
                                                 lambda batch: self.initial(batch, training=sample))
        prior = self.img_step(prev_state, prev_action, sample)
        slots = self._infer(prev_state['stoch'], prior['mean'], embed, is_first, sample)
        std = gaussian_std(self._obs_std(tf.concat([prior['deter'], slots], -1)), self._min_std)
        gate = prior['gate'][..., None] if self._gated else None
        post = {**prior, **self._latent(slots, std, gate, prev_state, sample)}
        return post, prior

    def get_feat(self, state):
        return self._pool(_tokens(state))[0]

    def decoder_input(self, state):
        return state['stoch']

    def attention(self, state):
        """The pooling's weight on each slot (the mean over its heads) and the slot's mask."""
        weights = tf.reduce_mean(self._pool(_tokens(state))[1], -2)
        return weights, self.slot_decoder.decode(state['stoch'])[1]

    def loss(self, post, prior):
        """The KL loss (the RSSM's balancing and free nats over `kl`), with the gate VSG's gate KL; as
        metrics the KL, entropies, and how the pooling weighs the slots: `pool_weight` [K], each slot's
        mean weight (which slots the heads, actor and critic read), and `pool_entropy`, the entropy of
        a head's weights (log K: spread evenly; 0: on one slot)."""
        loss, dyn = kl_loss(self.kl, post, prior, **self._kl)
        entropy = lambda state: tf.reduce_mean(tf.reduce_sum(gaussian_entropy(state['std']), [-2, -1]))
        weights = tf.stop_gradient(self._pool(_tokens(post))[1])  # [B, T, heads, K]
        metrics = {
            'kl': tf.reduce_mean(dyn), 'prior_ent': entropy(prior), 'post_ent': entropy(post),
            'pool_weight': tf.reduce_mean(tf.reshape(weights, [-1, weights.shape[-1]]), 0),
            'pool_entropy': tf.reduce_mean(-tf.reduce_sum(tf.math.xlogy(weights, weights), -1))}
        if self._gated:
            gate_term, gate_metrics = gate_loss(post, *self._gate_settings)
            loss += gate_term
            metrics.update(gate_metrics)
        return loss, metrics

    def kl(self, lhs, rhs):
        """KL(lhs || rhs) summed over the slots and their dimensions; with the gate over the open slots
        only (the mask passes its gradient to the gate, as SVSG's: opening a slot costs its KL)."""
        per_slot = tf.reduce_sum(gaussian_kl(lhs, rhs), -1)
        if self._gated:
            per_slot *= lhs['gate']
        return tf.reduce_sum(per_slot, -1)

    def make_encoder(self, obs_space, config):
        key = image_key(obs_space, config, self._sizes.resolution)
        return SlotEncoder(self.slot_encoder, key, self._sizes.tokens ** 2 * self._sizes.encoder_channels,
                           name='slot_encoder')

    def make_decoder(self, obs_space, config):
        return SlotDecoder(self.slot_decoder, image_key(obs_space, config, self._sizes.resolution), name='slot_decoder')

    def _latent(self, mean, std, gate, prev_state, sample):
        """The latent drawn from N(mean, std) and its stats; with the gate a shut slot keeps its latent."""
        stoch = gaussian_sample({'mean': mean, 'std': std}, self._rng, sample)
        if self._gated:
            stoch = gated_update(gate, stoch, prev_state['stoch'])
        return {'stoch': stoch, 'mean': mean, 'std': std}

    def _infer(self, initial, predicted, embed, is_first, sample):
        """The slots that slot attention finds among the frame's tokens (`embed`), started from the
        `predicted` slots; where an episode begins from the `initial` ones, with the slot model's
        first-frame iterations. Without `slots.carry` every frame is found as the slot model was trained
        to find it: from the learned initial slots (drawn in training) with the first-frame iterations, so
        slot k keeps the kind of object the model gave it; started from predicted slots instead, such a
        model's masks blur over the objects within a few steps."""
        sizes = self._sizes
        tokens = tf.reshape(embed, [-1, sizes.tokens ** 2, sizes.encoder_channels])
        if not sizes.carry:
            learned = self.initial(tf.shape(tokens)[0], training=sample)['stoch']
            return self.slot_attention(learned, tokens, iterations=sizes.iters_first)
        first = is_first[:, None, None]
        slots = self.slot_attention(tf.where(first, initial, predicted), tokens, iterations=sizes.iters_later)
        more = sizes.iters_first - sizes.iters_later
        if more <= 0:
            return slots
        # The same as iters_first iterations from the start; run only when a row needs them.
        refine = lambda: tf.where(first, self.slot_attention(slots, tokens, iterations=more), slots)
        return tf.cond(tf.reduce_any(is_first), refine, lambda: slots)


class SlotPool(keras.layers.Layer):
    """Slots [.., K, C] -> (one vector [.., C], each head's weights on the slots [.., heads, K]): multi-head
    attention from one learned query across the slots, so the vector does not depend on their order."""

    def __init__(self, size, heads, **kwargs):
        super().__init__(**kwargs)
        self._size = size
        self._attention = keras.layers.MultiHeadAttention(heads, size // heads, name='attention')

    def build(self, _=None):
        self.query = self.add_weight(shape=(1, 1, self._size), initializer='random_normal', name='query')

    def call(self, slots):
        lead, count = tf.shape(slots)[:-2], slots.shape[-2]
        flat = tf.cast(tf.reshape(slots, [-1, count, self._size]), self.compute_dtype)
        query = tf.broadcast_to(tf.cast(self.query, self.compute_dtype), [tf.shape(flat)[0], 1, self._size])
        pooled, weights = self._attention(query, flat, return_attention_scores=True)  # [N, 1, C], [N, heads, 1, K]
        pooled = tf.reshape(tf.cast(pooled, tf.float32), tf.concat([lead, [self._size]], 0))
        weights = tf.reshape(tf.cast(weights, tf.float32), tf.concat([lead, [weights.shape[1], count]], 0))
        return pooled, weights


class SlotEncoder(keras.layers.Layer):
    """The slot core's encoder, with the surface of the world model's (nets.Encoder): the slot model's
    conv encoder on one image key, its tokens [.., M, C] flattened into one embedding [.., M C]
    (`embed_size`) that the scans carry like any other."""

    def __init__(self, encoder, key, embed_size, **kwargs):
        super().__init__(**kwargs)
        self._encoder = encoder
        self.image_keys, self.vector_keys = (key,), ()
        self.embed_size = embed_size

    @property
    def keys(self):
        return self.image_keys

    def call(self, obs):
        frames = obs[self.image_keys[0]]
        tokens = self._encoder(tf.reshape(frames, [-1, *frames.shape[-3:]]))
        return tf.reshape(tokens, tf.concat([tf.shape(frames)[:-3], [self.embed_size]], 0))


class SlotDecoder(keras.layers.Layer):
    """The slot core's decoder, with the surface of the world model's (nets.Decoder): each slot [.., K, D]
    (the core's `decoder_input`) through the slot model's broadcast decoder, the slots' images composed
    by their masks into the image key's frame."""

    def __init__(self, decoder, key, **kwargs):
        super().__init__(**kwargs)
        self._decoder = decoder
        self.image_keys, self.vector_keys = (key,), ()

    @property
    def keys(self):
        return self.image_keys

    def call(self, slots):
        return {self.image_keys[0]: self._decoder.frame(slots)}

    def video(self, slots, key):
        """The frame, then each slot's mask x its RGB (black where the slot is absent): [.., 1 + K, H, W, 3]."""
        frame, masks, rgb = self._decoder.decode(slots)
        return tf.concat([frame[..., None, :, :, :], masks[..., None] * (rgb + 0.5) - 0.5], -4)

    def target(self, obs, key):
        return tf.cast(obs[key], tf.float32) / 255 - 0.5


def image_key(obs_space, config, resolution):
    """The observation key whose frames the slot core reads; ValueError (one line) if the env observes
    no image, or one of another size than the slot model's."""
    key = video.frames_key(obs_space)
    if key is None:
        observed, suite = ', '.join(nets.observed(obs_space)), config.task.partition('_')[0]
        raise ValueError(f'the slot core reads an image and the env observes none ({observed}); '
                         f'observe pixels: --env.{suite}.obs pixels or both')
    shape, side = tuple(obs_space[key].shape), resolution
    if shape[:2] != (side, side):
        raise ValueError(f"observation '{key}' has shape {shape}; the slot core takes {side}x{side} frames "
                         f'(slots.resolution): set --env.size {side} {side} or --slots.resolution {shape[0]}')
    return key


def _tokens(state):
    """Each slot's whole state [.., K, 2D]: what the pooling reads."""
    return tf.concat([state['deter'], state['stoch']], -1)


def _check(sizes, heads, pretrained, finetune):
    sizes.check()
    if sizes.slot_size % heads:
        raise ValueError(f'slot.heads={heads} must divide slots.slot_size={sizes.slot_size} (each head of the prior '
                         'and the pooling attends with slot_size / heads dimensions)')
    if not finetune and not pretrained:
        raise ValueError('slot.finetune=false freezes a pre-trained slot model: give slot.pretrained (a vsg.slots '
                         'logdir or slots.npz) or keep finetune true')


def _slot_model(sizes, pretrained):
    """The slot model of `sizes`, loaded from `pretrained` (SlotError, one line, for a missing file or one
    of other sizes) or new. Always float32, as vsg.slots trains it: its layers mix in float32 tensors."""
    with dtype_policy('float32'):
        if pretrained:
            return slot_models.load(pretrained, **sizes.shapes())[0]
        model = SlotModel(sizes)
        model.build_all()
        return model
