"""Agent = WorldModel + ActorCritic. `Agent.train` and `Agent.policy` are the two compiled functions.

Conventions: a batch is batch-major [B, T, ...] with `action[t]` the action that led to `obs[t]`.
Imagined trajectories are time-major: states s_0..s_H, actions a_0..a_{H-1} with a_t taken in s_t,
and the reward and continue flag of entering s_{t+1} read from the heads at s_{t+1}.
"""
import keras
import numpy as np
import tensorflow as tf

from common import dists, nets, replicas
from vsg import cores
from vsg.learner import Learner


def lambda_return(reward, next_value, discount, lam):
    """TD(λ) targets over a time-major horizon H.

    R_t = r_{t+1} + γ_{t+1} ((1 - λ) V(s_{t+1}) + λ R_{t+1}), with R_H = V(s_H). Inputs are aligned
    so that index t holds r_{t+1}, V(s_{t+1}) and γ_{t+1} (discount times continue probability)."""
    def step(later_return, inputs):
        r, v, g = inputs
        return r + g * ((1 - lam) * v + lam * later_return)

    return tf.scan(step, (reward, next_value, discount), next_value[-1], reverse=True)


def _seed(rng):
    """A stateless seed for TFP drawn from the agent's generator, so sampling stays reproducible under XLA."""
    return tf.cast(rng.make_seeds(1)[:, 0], tf.int32)


LOSS_TERMS = ('reward', 'cont', 'kl')  # The world model's losses besides one per decoded observation key.


class WorldModel(keras.layers.Layer):
    """Encoder, core, decoder and heads; `loss` is the world model's objective on a [B, T] batch. The
    encoder reads and the decoder predicts the observation keys that `encoder.*_keys` and
    `decoder.*_keys` pick from `obs_space` (nets.select_keys)."""

    def __init__(self, obs_space, config, rng, **kwargs):
        super().__init__(**kwargs)
        self.core = cores.make(config, rng)
        # A core may bring its own encoder and decoder (e.g. per-slot ones); else the world model's.
        encoder, decoder = self.core.make_encoder(obs_space, config), self.core.make_decoder(obs_space, config)
        self.encoder = encoder if encoder is not None else _encoder(obs_space, config.encoder)
        self.decoder = decoder if decoder is not None else _decoder(obs_space, config)
        self._reward_dist = config.reward_head.dist
        self.reward_head = _head(config.reward_head, 'reward_head')
        self.cont_head = _mlp(config.cont_head, 1, 'cont_head') if config.pred_cont else None
        self._scales = dict(config.loss_scales)
        unknown = sorted(set(self._scales) - {*LOSS_TERMS, *self.decoder.keys})
        if unknown:
            raise ValueError(f"loss_scales.{unknown[0]} names no loss; the losses are "
                             f"{', '.join([*self.decoder.keys, *LOSS_TERMS])}")
        self._discount = config.discount
        self._decode_every = config.decoder.every

    def loss(self, data):
        embed = self.encoder(data)
        post, prior = self.core.observe(embed, data['action'], data['is_first'])
        kl_loss, metrics = self.core.loss(post, prior)
        feat = self.core.get_feat(post)
        losses = self.decoder_losses(self.core.decoder_input(post), data)
        losses['reward'] = -tf.reduce_mean(self.reward(feat).log_prob(data['reward']))
        losses['kl'] = kl_loss
        if self.cont_head is not None:
            cont = 1 - tf.cast(data['is_terminal'], tf.float32)
            losses['cont'] = -tf.reduce_mean(self.cont(feat).log_prob(cont))
        total = sum(self._scales.get(name, 1.0) * loss for name, loss in losses.items())
        metrics.update({f'{name}_loss': loss for name, loss in losses.items()})
        return total, post, metrics

    def decoder_losses(self, inputs, data):
        """{decoded key: its negative log-likelihood, averaged over batch and the decoded steps}, from the
        core's `decoder_input` [B, T, ...]: every `decoder.every`-th step of the sequences, from the first."""
        steps = slice(None, None, self._decode_every)
        losses = {}
        for key, mean in self.decoder(inputs[:, steps]).items():
            # Images are Gaussians over their 3 axes, vectors over their one.
            dist = dists.MSE(mean, 3 if key in self.decoder.image_keys else 1)
            losses[key] = -tf.reduce_mean(dist.log_prob(self.decoder.target({key: data[key][:, steps]}, key)))
        return losses

    def video_prediction(self, data, rows=4, context=5):
        """Truth | model | error stacked vertically, then the parts the decoder composes the model's image
        of (`decoder.video`; the slot core's: each slot's mask x its RGB), `rows` sequences side by side,
        of the first decoded image key: the model sees `context` frames, then predicts the rest open loop
        from the true actions. uint8 [T, (3 + parts) H, rows W, C]. Only for world models that decode an
        image."""
        key = self.decoder.image_keys[0]
        data = {name: value[:rows] for name, value in data.items()}
        context = min(context, data['action'].shape[1] // 2)
        embed = self.encoder(data)
        post, _ = self.core.observe(embed[:, :context], data['action'][:, :context], data['is_first'][:, :context])
        start = {name: value[:, -1] for name, value in post.items()}
        prior = self.core.imagine(data['action'][:, context:], start)
        panels = tf.concat([self.decoder.video(self.core.decoder_input(post), key),
                            self.decoder.video(self.core.decoder_input(prior), key)], 1) + 0.5  # [rows, T, P, H, W, C]
        model, parts = panels[:, :, 0], tf.unstack(panels[:, :, 1:], axis=2)
        truth = tf.cast(data[key], tf.float32) / 255
        error = (model - truth + 1) / 2
        video = tf.concat([truth, model, error, *parts], 2)              # [rows, T, (3 + parts) H, W, C]
        video = tf.concat(tf.unstack(video, axis=0), 2)                  # [T, (3 + parts) H, rows W, C]
        return tf.cast(tf.clip_by_value(video, 0, 1) * 255, tf.uint8)

    def attention(self, data):
        """The core's `attention` (weights [B, T, K], masks [B, T, K, H, W]) over the posteriors of
        observed sequences, taken without sampling as the eval policy takes them; None where the core's
        feature does not attend over parts."""
        post, _ = self.core.observe(self.encoder(data), data['action'], data['is_first'], sample=False)
        return self.core.attention(post)

    def reward(self, feat):
        return dists.head(self._reward_dist, self.reward_head(feat))

    def cont(self, feat):
        return dists.Binary(self.cont_head(feat)[..., 0])

    def discount(self, feat):
        """γ times the probability that the episode continues into `feat`'s state."""
        if self.cont_head is None:
            return self._discount * tf.ones(tf.shape(feat)[:-1])
        return self._discount * self.cont(feat).mean()


def _mlp(cfg, out, name, **kwargs):
    """An MLP from a config block with layers, units, act and norm."""
    return nets.MLP(cfg.layers, cfg.units, cfg.act, out, cfg.norm, name=name, **kwargs)


def _head(cfg, name):
    """A scalar head (reward, critic) sized for its `cfg.dist`; two-hot outputs start at 0 (DreamerV3)."""
    return _mlp(cfg, dists.head_size(cfg.dist), name, zero_out=cfg.dist == 'twohot')


def _encoder(obs_space, enc):
    keys = nets.select_keys(obs_space, enc.cnn_keys, enc.mlp_keys)
    if not any(keys):
        raise ValueError(f'encoder.cnn_keys={enc.cnn_keys!r} and encoder.mlp_keys={enc.mlp_keys!r} match no '
                         f'observation; the env observes {", ".join(nets.observed(obs_space))}')
    return nets.Encoder(*keys, enc.depth, enc.act, enc.mlp_layers, enc.mlp_units, enc.symlog_inputs, enc.norm,
                        nets.image_side(obs_space, keys[0]), name='encoder')


def _decoder(obs_space, config):
    dec = config.decoder
    keys = nets.select_keys(obs_space, dec.cnn_keys, dec.mlp_keys)
    return nets.Decoder(obs_space, *keys, dec.depth, dec.act, dec.mlp_layers, dec.mlp_units,
                        config.encoder.symlog_inputs, dec.norm, dec.resolution, name='decoder')


def example_batch(agent, obs_space, shape, rng=None):
    """A numpy batch of everything `agent.train` reads, of leading shape [B, T]: the observation keys
    of its encoder and decoder, action, reward and flags. Zeros, or with `rng` (numpy) random values:
    uniform pixels, normal vectors and rewards, uniform actions, and no episode start."""
    keys = sorted({*agent.wm.encoder.keys, *agent.wm.decoder.keys})

    def draw(space):
        full = (*shape, *space.shape)
        if rng is None:
            return np.zeros(full, space.dtype)
        if space.dtype == np.uint8:
            return rng.integers(0, 256, full).astype(np.uint8)
        return rng.normal(size=full).astype(space.dtype)

    batch = {key: draw(obs_space[key]) for key in keys}
    actions = np.zeros((*shape, agent.act_dim)) if rng is None else rng.uniform(-1, 1, (*shape, agent.act_dim))
    batch.update({
        'action': actions.astype(np.float32),
        'reward': np.zeros(shape, np.float32) if rng is None else rng.normal(size=shape).astype(np.float32),
        'is_first': np.zeros(shape, bool), 'is_terminal': np.zeros(shape, bool)})
    return batch


class ReturnScale(keras.layers.Layer):
    """DreamerV3's return normaliser: an EMA of the 5th-to-95th percentile range of the λ-returns,
    floored at 1 so that small returns are not blown up into noise. Calling it updates the EMA
    with the batch and returns the scale (no gradient flows through it). Under a strategy the
    percentiles are those of every replica's returns, so all replicas hold the same EMA."""

    def __init__(self, decay, **kwargs):
        super().__init__(**kwargs)
        self._decay = decay
        # Every replica assigns the same value; the first one's is kept.
        self.low = self.add_weight(shape=(), initializer='zeros', trainable=False, name='low',
                                   aggregation='only_first_replica')
        self.high = self.add_weight(shape=(), initializer='zeros', trainable=False, name='high',
                                    aggregation='only_first_replica')

    def call(self, returns):
        low, high = percentiles(replicas.gather(tf.stop_gradient(returns)), (5, 95))
        self.low.assign(self._decay * self.low + (1 - self._decay) * low)
        self.high.assign(self._decay * self.high + (1 - self._decay) * high)
        return tf.maximum(1.0, self.high - self.low)


def percentiles(x, qs):
    """The `qs` percentiles of all entries of `x` (nearest rank below, as in numpy's 'lower')."""
    flat = tf.sort(tf.reshape(x, [-1]))
    last = tf.cast(tf.size(flat) - 1, tf.float32)
    return [flat[tf.cast(tf.floor(q / 100 * last), tf.int32)] for q in qs]


class ActorCritic(keras.layers.Layer):

    def __init__(self, act_dim, discrete, config, rng, **kwargs):
        super().__init__(**kwargs)
        self._rng = rng
        self._dist = config.actor.dist if config.actor.dist != 'auto' else ('onehot' if discrete else 'trunc_normal')
        self._grad = config.actor_grad if config.actor_grad != 'auto' else ('reinforce' if discrete else 'dynamics')
        if self._dist == 'onehot' and not discrete:
            raise ValueError("actor.dist 'onehot' needs a discrete action space; use trunc_normal or auto")
        if self._dist == 'trunc_normal' and discrete:
            raise ValueError("actor.dist 'trunc_normal' needs a continuous action space; use onehot or auto")
        if self._grad == 'dynamics' and discrete:
            raise ValueError("actor_grad 'dynamics' needs continuous actions; use reinforce or auto")
        self._min_std = config.actor.min_std
        # Computed once; a bad actor.init_std stops here, before training.
        self._std_shift = dists.std_logit_shift(config.actor.init_std, self._min_std) if self._dist == 'trunc_normal' else None
        self._horizon = config.imag_horizon
        self._lambda = config.discount_lambda
        self._ent_scale = config.actor_ent
        self._unimix = config.unimix.actor
        self._value_dist = config.critic.dist
        self._slow_reg = config.critic.slow_reg
        self._target_every, self._target_fraction = config.slow_target_update, config.slow_target_fraction
        self.return_scale = ReturnScale(config.return_norm.decay, dtype='float32') if config.return_norm.on else None
        self.actor = _mlp(config.actor, act_dim if self._dist == 'onehot' else 2 * act_dim, 'actor')
        self.critic = _head(config.critic, 'critic')
        self.target_critic = _head(config.critic, 'target_critic')

    def policy(self, feat):
        out = self.actor(feat)
        if self._dist == 'onehot':
            return dists.OneHot(dists.unimix(out, self._unimix))
        mean, std = tf.split(out, 2, -1)
        return dists.trunc_normal(mean, std, self._min_std, self._std_shift)

    def imagine(self, wm, start):
        """Rolls the policy through the core's prior for `imag_horizon` steps from `start` states."""
        def step(carry, _):
            state, _ = carry
            action = self.policy(tf.stop_gradient(wm.core.get_feat(state))).sample(seed=_seed(self._rng))
            return wm.core.img_step(state, action), action

        dummy_action = tf.zeros_like(self.policy(wm.core.get_feat(start)).mode())
        states, actions = tf.scan(step, tf.range(self._horizon), (start, dummy_action))
        feats = tf.concat([wm.core.get_feat(start)[None], wm.core.get_feat(states)], 0)
        return feats, actions

    def train(self, wm, start, actor_opt, critic_opt, updates):
        with tf.GradientTape() as actor_tape:
            feat, action = self.imagine(wm, start)
            # The returns and their scale stay in float32 under mixed precision.
            reward = tf.cast(wm.reward(feat[1:]).mean(), tf.float32)
            discount = tf.cast(wm.discount(feat[1:]), tf.float32)
            value = self.value(self.target_critic, feat).mean()
            returns = lambda_return(reward, value[1:], discount, self._lambda)
            # Later steps count less: they are reached only if the episode continues.
            weight = tf.stop_gradient(tf.math.cumprod(tf.concat([tf.ones_like(discount[:1]), discount[:-1]], 0)))
            policy = self.policy(tf.stop_gradient(feat[:-1]))
            # Dividing by the return range makes `actor_ent` a fixed trade-off whatever the reward scale.
            scale = self.return_scale(returns) if self.return_scale is not None else 1.0
            if self._grad == 'dynamics':
                objective = returns / scale
            else:
                advantage = tf.stop_gradient((returns - value[:-1]) / scale)
                objective = policy.log_prob(tf.stop_gradient(action)) * advantage
            entropy = policy.entropy()
            actor_loss = -tf.reduce_mean(weight * (objective + self._ent_scale * entropy))
        metrics = actor_opt(actor_tape, actor_loss, self.actor.trainable_variables)
        with tf.GradientTape() as critic_tape:
            critic_loss = self.critic_loss(tf.stop_gradient(feat[:-1]), returns, value[:-1], weight)
        metrics.update(critic_opt(critic_tape, critic_loss, self.critic.trainable_variables))
        self._update_target(updates)
        metrics.update({
            'imag_reward': tf.reduce_mean(reward), 'imag_return': tf.reduce_mean(returns),
            'imag_value': tf.reduce_mean(value), 'actor_ent': tf.reduce_mean(entropy),
            # Near 1 the actor sits at the action bounds, where the tanh mean stops learning.
            'imag_action_mag': tf.reduce_mean(tf.abs(action)),
            'return_scale': tf.convert_to_tensor(scale, tf.float32)})
        return metrics

    def value(self, critic, feat):
        """The value distribution that `critic` (the critic or its slow target) predicts at `feat`."""
        return dists.head(self._value_dist, critic(feat))

    def critic_loss(self, feat, returns, slow_value, weight):
        """The critic's negative log-likelihood of the λ-returns, plus `slow_reg` times that of the slow
        target critic's values (DreamerV3's regulariser towards its EMA critic), weighted per step."""
        dist = self.value(self.critic, feat)
        nll = -dist.log_prob(tf.stop_gradient(returns))
        if self._slow_reg:
            nll -= self._slow_reg * dist.log_prob(tf.stop_gradient(slow_value))
        return tf.reduce_mean(weight * nll)

    def sync_target(self):
        for target, online in zip(self.target_critic.variables, self.critic.variables):
            target.assign(online)

    def _update_target(self, updates):
        """Every `slow_target_update` updates, moves the slow target `slow_target_fraction` of the way to
        the critic: 1 copies it, DreamerV3's EMA moves 0.02 every update (branch-free for XLA)."""
        mix = self._target_fraction * tf.cast(updates % self._target_every == 0, tf.float32)
        for target, online in zip(self.target_critic.variables, self.critic.variables):
            target.assign(target + mix * (online - target))


class Agent:
    """The world model and actor-critic with their optimizers and the compiled `train` and `policy`;
    checkpointing sees `variables`. `learner` (vsg/learner.py, default: one from `config`) decides how
    they are built and run."""

    def __init__(self, obs_space, act_space, config, learner=None):
        learner = learner or Learner(config)
        self.config = config
        action = act_space['action']
        self.discrete = hasattr(action, 'n')
        self.act_dim = int(action.n) if self.discrete else int(action.shape[-1])
        self.rng = learner.rng
        with learner.scope():
            self.wm = WorldModel(obs_space, config, self.rng, name='world_model')
            self.ac = ActorCritic(self.act_dim, self.discrete, config, self.rng, name='actor_critic')
            self.model_opt = learner.optimizer('model_opt', config.model_opt)
            self.actor_opt = learner.optimizer('actor_opt', config.actor_opt)
            self.critic_opt = learner.optimizer('critic_opt', config.critic_opt)
            self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name='updates',
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self._build(obs_space)
        self.train = learner.step(self._train)
        self.policy = learner.compile(self._policy)
        # The world model alone (vsg.screen); traced only if called.
        self.train_world_model = learner.step(lambda data: self._train_world_model(data)[1])
        # Runs only at log time, so it is not worth an XLA compile; None without a decoded image.
        self.video_prediction = learner.compile(self.wm.video_prediction, jit=False) if self.wm.decoder.image_keys else None
        self.attention = learner.compile(self.wm.attention, jit=False)  # vsg.evaluate --attention

    @property
    def variables(self):
        """Everything a resumed run needs, in a fixed order."""
        opts = self.model_opt.variables + self.actor_opt.variables + self.critic_opt.variables
        return self.wm.variables + self.ac.variables + opts + [self.updates, self.rng.state]

    def initial_policy_state(self, batch_size):
        return self.wm.core.initial(batch_size), tf.zeros([batch_size, self.act_dim])

    def _policy(self, obs, state, mode):
        """One batched env step: `mode` 'train' samples the actor, 'eval' takes its mode."""
        latent, prev_action = state
        embed = self.wm.encoder(obs)
        sample = mode == 'train' or self.config.eval_sample  # else the modes of the latents (and gates)
        latent, _ = self.wm.core.obs_step(latent, prev_action, embed, obs['is_first'], sample)
        dist = self.ac.policy(self.wm.core.get_feat(latent))
        action = dist.sample(seed=_seed(self.rng)) if mode == 'train' else dist.mode()
        return action, (latent, action)

    def _train(self, data):
        post, metrics = self._train_world_model(data)
        start = tf.nest.map_structure(
            lambda x: tf.stop_gradient(tf.reshape(x, [-1, *x.shape[2:]])), post)
        metrics.update(self.ac.train(self.wm, start, self.actor_opt, self.critic_opt, self.updates))
        self.updates.assign_add(1)
        return metrics

    def _train_world_model(self, data):
        with tf.GradientTape() as model_tape:
            model_loss, post, metrics = self.wm.loss(data)
        metrics.update(self.model_opt(model_tape, model_loss, self.wm.trainable_variables))
        return post, metrics

    def _build(self, obs_space):
        """Creates every variable eagerly on a [1, 2] dummy batch, so compiled functions never do."""
        dummy = {key: tf.constant(value) for key, value in example_batch(self, obs_space, [1, 2]).items()}
        dummy['is_first'] = tf.ones([1, 2], tf.bool)
        _, post, _ = self.wm.loss(dummy)
        feat = self.wm.core.get_feat(post)
        for net in (self.ac.actor, self.ac.critic, self.ac.target_critic):
            net(feat)
        self.ac.sync_target()
        self.model_opt.build(self.wm.trainable_variables)
        self.actor_opt.build(self.ac.actor.trainable_variables)
        self.critic_opt.build(self.ac.critic.trainable_variables)
