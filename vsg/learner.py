"""How a step runs, in one place: the precision policy the networks are built under, the seeds of
their initial weights, the random generator every sample draws from, the optimizers, and the
compilation of the train and policy functions (docs/design.md, "The learner"). The world model and
the actor-critic (vsg/agent.py) only define losses; a distribution strategy joins here next.
"""
import contextlib

import keras
import tensorflow as tf

from common import optim


class Learner:

    def __init__(self, config):
        self.precision = config.precision  # a Keras dtype policy name: float32, mixed_bfloat16, ...
        self.jit = config.jit
        self.seed = config.seed
        # Every sample (latents, gates, actions) draws from it: a stateless-under-XLA, checkpointed stream.
        self.rng = tf.random.Generator.from_seed(config.seed)

    @contextlib.contextmanager
    def scope(self):
        """Build networks inside: their layers take the precision policy and seeded initial weights."""
        with dtype_policy(self.precision):
            tf.random.set_seed(self.seed)
            yield

    def optimizer(self, name, settings):
        """Adam with clipping (and loss scaling under float16) from a config block {lr, eps, clip, wd}."""
        return optim.Optimizer(name, **settings, precision=self.precision)

    def compile(self, function, jit=None):
        """`function` as one graph, XLA-compiled when `jit` (default: the config's)."""
        return tf.function(function, jit_compile=self.jit if jit is None else jit)


@contextlib.contextmanager
def dtype_policy(name):
    """Layers made inside take the Keras dtype policy `name` (float32, mixed_bfloat16, ...). Keras reads
    it from one process-wide setting when a layer is made, so this sets it and puts the previous one
    back on exit."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
