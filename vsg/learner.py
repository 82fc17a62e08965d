"""How a step runs, in one place: the distribution strategy and its replicas, the precision policy the
networks are built under, the seeds of their initial weights, the random generator every sample draws
from, the optimizers, the batches' way to the replicas, and the compilation of the train and policy
functions (docs/design.md, "The learner"). The world model and the actor-critic (vsg/agent.py) only
define losses; the statistics that must span the global batch are common/replicas.py's.
"""
import contextlib
import functools
import hashlib
import json
import os

import keras
import tensorflow as tf

from common import optim


class Learner:

    def __init__(self, config):
        """Raises ValueError (one line) for a strategy that cannot run as configured. Make it before any
        other TensorFlow op: logical CPU devices and multi-worker collectives are set up only then."""
        self.strategy, resolver = make_strategy(config.strategy, config.strategy_devices)
        self.replicas = self.strategy.num_replicas_in_sync
        # The chief writes checkpoints, logs, videos and the replay; the other workers only train.
        tasks = [] if resolver is None else [(job, i) for job in ('chief', 'worker')
                                             for i in range(len(resolver.cluster_spec().as_dict().get(job, ())))]
        self.workers = max(1, len(tasks))
        # This process's place among them, the chief's 0 (e.g. to seed its envs apart).
        self.worker = 0 if resolver is None else tasks.index((resolver.task_type, resolver.task_id))
        self.is_chief = self.worker == 0
        _check(config, self.strategy)
        if resolver is not None:
            self._check_same_config(config)
        self.precision = config.precision  # a Keras dtype policy name: float32, mixed_bfloat16, ...
        self.jit = config.jit
        self.seed = config.seed
        # Every sample (latents, gates, actions) draws from it: a stateless-under-XLA, checkpointed stream;
        # under a strategy each replica draws its own numbers from it.
        with self.strategy.scope():
            self.rng = tf.random.Generator.from_seed(config.seed)

    @contextlib.contextmanager
    def scope(self):
        """Build networks inside: their variables are the strategy's (one copy per replica), their layers
        take the precision policy and seeded initial weights."""
        with self.strategy.scope(), dtype_policy(self.precision):
            keras.utils.set_random_seed(self.seed)  # Keras 3 initialisers ignore tf.random.set_seed alone
            yield

    def optimizer(self, name, settings):
        """Adam with clipping (and loss scaling under float16) from a config block {lr, eps, clip, wd}."""
        return optim.Optimizer(name, **settings, precision=self.precision)

    def compile(self, function, jit=None):
        """`function` as one graph, XLA-compiled when `jit` (default: the config's)."""
        return tf.function(function, jit_compile=self.jit if jit is None else jit)

    def step(self, function):
        """`function(batch) -> {name: metric}` as the compiled train step on a batch from `dataset`: each
        replica runs it on its shard, its losses the shard's means; the metrics are averaged over the
        replicas, i.e. those of the global batch."""
        replica_step = self.compile(function)
        if self.replicas == 1:  # Wrapped in strategy.run, TensorFlow fuses its ops otherwise: other last bits.
            return replica_step

        def run(batch):
            metrics = self.strategy.run(replica_step, args=(batch,))
            return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                    for name, value in metrics.items()}

        return tf.function(run)

    def dataset(self, make, global_batch):
        """The batches for `step`: `make(batch)` returns a tf.data.Dataset of batches of `batch` sequences,
        called once per worker to feed its replicas their shares of `global_batch`."""
        return self.strategy.distribute_datasets_from_function(
            lambda context: make(context.get_per_replica_batch_size(global_batch)))

    def local(self, batch):
        """This process's first replica's shard of a batch from `dataset` (for logging, e.g. videos)."""
        return self.strategy.experimental_local_results(batch)[0]

    def from_chief(self, numbers):
        """The chief's values of a list of integers (a collective: every worker calls it at the same point)."""
        if self.workers == 1:
            return list(numbers)
        mine = [int(n) if self.is_chief else 0 for n in numbers]
        return self._sum(mine, only_first_replica=True)

    def _check_same_config(self, config):
        """Refuses, on every worker, a cluster whose workers' configs differ: they would not compute one step."""
        text = json.dumps(dict(config.flat), sort_keys=True, default=str)
        digest = int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)
        if self._sum([digest])[0] != digest * self.replicas:
            raise ValueError(f'the workers were started with different configs (this one hashes to {digest:07x}); '
                             'start every worker with the same flags')

    def _sum(self, numbers, only_first_replica=False):
        """The sum over all replicas of `numbers` (integers), or only replica 0's (the chief's first)."""
        numbers = tf.constant(numbers, tf.int64)

        def replica():
            if not only_first_replica:
                return numbers
            first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
            return numbers * tf.cast(first, tf.int64)

        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(replica), axis=None)
        return [int(n) for n in total.numpy()]


@functools.cache  # One per process: a second strategy on the same devices would reuse the first's collective keys.
def make_strategy(name, devices=0):
    """(strategy, cluster resolver or None) for config.strategy `name`: default (this process's one
    device), mirrored (all local GPUs, or `devices` logical CPU devices when above 0) or multi_worker
    (a cluster from TF_CONFIG, else from SLURM's variables)."""
    if name == 'default':
        return tf.distribute.get_strategy(), None
    if name == 'mirrored':
        if not devices:
            return tf.distribute.MirroredStrategy(), None
        cpu = tf.config.list_physical_devices('CPU')[0]
        if len(tf.config.get_logical_device_configuration(cpu) or ()) != devices:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        return tf.distribute.MirroredStrategy([f'/cpu:{i}' for i in range(devices)]), None
    resolver = _cluster_resolver()
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver), resolver


def _cluster_resolver():
    if os.environ.get('TF_CONFIG'):
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    elif int(os.environ.get('SLURM_NTASKS', 0)) > 1:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    else:
        raise ValueError('strategy=multi_worker needs a cluster: set TF_CONFIG on every worker, or run under '
                         'SLURM with several tasks (scripts/slurm.sh)')
    if not resolver.cluster_spec().as_dict():
        raise ValueError('strategy=multi_worker needs a cluster: TF_CONFIG names no cluster')
    return resolver


def _check(config, strategy):
    if config.strategy == 'default':
        return
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f'batch_size={config.batch_size} (the global batch) does not split over the {replicas} '
                         f'replicas of strategy={config.strategy}; use a multiple of {replicas}')
    on_cpu = any('CPU' in device.upper() for device in strategy.extended.worker_devices)
    if config.jit and on_cpu:
        raise ValueError(f'jit=True cannot run under strategy={config.strategy} on CPU devices (XLA reads one '
                         "device's variables from another); use --jit False")


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
