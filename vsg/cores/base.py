"""The core interface: what the world model, the actor-critic, the tools and the tests may call on a
latent dynamics core (docs/design.md, "The core interface"). A new core subclasses `Core`, implements
its abstract members and registers a constructor in vsg/cores/__init__.py; nothing else branches on
which core runs.

Conventions. A state is a dict of float32 tensors with a leading batch axis [B, ...] (sequences:
[B, T, ...]); its keys and per-entry shapes are fixed per core (`state_shapes`) and every step
returns the same structure, so states go through `tf.scan` and `tf.nest`. Actions are float32
[B, A] (one-hot for discrete spaces), `embed` is the encoder's output [B, E], `is_first` bool [B].
`sample=False` asks for the modes of every random choice (eval without sampling). The reward and
continue heads, the actor and the critic read `get_feat(state)`; the decoder reads
`decoder_input(state)`, the same features unless a core's own decoder wants more (the slot core's
reads every slot).
"""
import abc

import keras
import tensorflow as tf


class Core(keras.layers.Layer, abc.ABC):

    # What a core must provide.

    @property
    @abc.abstractmethod
    def feat_size(self):
        """Length F of `get_feat`'s output: what the reward, continue, actor and critic heads read."""

    @property
    @abc.abstractmethod
    def sizes(self):
        """{name: int}: the sizes that define this core, for benchmark records and logs."""

    @abc.abstractmethod
    def initial(self, batch_size, training=False):
        """The state before an episode's first step, [batch_size, ...] per key. `training` tells a
        core that initialises differently in training (e.g. sampled slots) which case this is."""

    @abc.abstractmethod
    def img_step(self, prev_state, prev_action, sample=True):
        """The prior: the next state from the previous state and action alone."""

    @abc.abstractmethod
    def obs_step(self, prev_state, prev_action, embed, is_first, sample=True):
        """(posterior, prior) of one step: the prior from `img_step`, the posterior also sees `embed`.
        Where `is_first`, the previous state and action are reset to `initial` and zeros first."""

    @abc.abstractmethod
    def get_feat(self, state):
        """Flat features [..., F] of a state (any leading axes)."""

    @abc.abstractmethod
    def loss(self, post, prior):
        """(scalar loss, {name: metric}) from posterior and prior sequences [B, T, ...]: the KL terms
        (balancing, free nats) and any core-specific term and diagnostic (e.g. gate KL, open gates).
        Metrics are scalars or 1-D vectors (logged as histograms)."""

    # What a core may override.

    def make_encoder(self, obs_space, config):
        """The core's own observation encoder, or None for the world model's (nets.Encoder). A core
        that needs another input, e.g. per-slot features, returns a layer with the Encoder's
        surface: `keys`, `image_keys`, `vector_keys` and `__call__(obs) -> embed`."""
        return None

    def make_decoder(self, obs_space, config):
        """The core's own decoder, or None for the world model's (nets.Decoder); same surface as it:
        `keys`, `image_keys`, `vector_keys`, `__call__(inputs) -> {key: mean}`, `target(obs, key)` and
        `video(inputs, key)`, its inputs `decoder_input(state)`."""
        return None

    def decoder_input(self, state):
        """What the decoder reads of a state (any leading axes): the features by default; a core whose
        decoder reads more, e.g. each slot on its own, returns that."""
        return self.get_feat(state)

    def attention(self, state):
        """Which parts of a state `get_feat` reads, for vsg.evaluate's attention video: (weights
        [.., K] over the state's K parts, summing to one, and each part's mask on the image
        [.., K, H, W], summing to one over K), or None (the default) where the feature is not a
        weighting of parts. The slot core's parts are its slots."""
        return None

    @property
    def state_shapes(self):
        """{key: per-entry shape without the batch axis} of this core's states."""
        return {key: tuple(value.shape[1:]) for key, value in self.initial(1).items()}

    # Provided: whole sequences by scanning the steps.

    def observe(self, embed, action, is_first, state=None, sample=True):
        """(posterior, prior) over a [B, T] sequence, from `state` (default: `initial`)."""
        if state is None:
            state = self.initial(tf.shape(action)[0], training=True)
        inputs = [time_major(x) for x in (action, embed, is_first)]

        def step(carry, inp):
            return self.obs_step(carry[0], *inp, sample=sample)

        post, prior = tf.scan(step, inputs, (state, state))
        return batch_major(post), batch_major(prior)

    def imagine(self, action, state, sample=True):
        """Prior states for a [B, T] action sequence from a start state [B, ...]."""
        prior = tf.scan(lambda prev, act: self.img_step(prev, act, sample), time_major(action), state)
        return batch_major(prior)


def time_major(x):
    """Swaps the first two axes of every tensor in `x`: [B, T, ...] <-> [T, B, ...]."""
    return tf.nest.map_structure(lambda t: tf.transpose(t, [1, 0] + list(range(2, len(t.shape)))), x)


batch_major = time_major  # Swapping the first two axes is its own inverse.
