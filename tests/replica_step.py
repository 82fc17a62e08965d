"""Run by tests/test_distribute.py in a fresh process, since logical CPU devices exist only if made before
TensorFlow starts: `python tests/replica_step.py CASE...`, a CASE being config flags joined by commas
(`--core,vsg,--return_norm.on,True`). For each, the agent of `--configs debug` and the flags is built
twice, with the default strategy and mirrored over 2 logical CPU devices, from the same initial weights
(a strategy draws them in another order); each trains `--steps` times (default 2) on the same global
batches. Prints a JSON list, per case {'params': largest parameter difference, 'metrics': largest
relative metric difference, 'default'/'mirrored': {metric: last value}}. `--overflow 1` makes the
second batch's rewards infinite, for the loss-scaling skip. `--pixels 0` observes a vector instead of
an image (a faster build).

`python tests/replica_step.py --worker OUT.npz FLAG...` instead trains on this worker's batches under
the strategy of the flags (multi_worker: TF_CONFIG) and saves its final variables to OUT.npz.

One device and two draw different random numbers for the same sample (a replica draws for its shard),
so the noise is taken out: the generator returns the centre of each draw (a Gumbel-max sample is then
the mode, a Gaussian its mean, a gate opens where p > 0.5) and the actor's truncated normal its
location, its gradients still the sampler's. What is left to compare is the arithmetic of the step.
"""
import json
import pathlib
import sys

import gymnasium
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from common import config as config_lib  # noqa: E402
from common import dists  # noqa: E402
from vsg import learner as learner_lib  # noqa: E402
from vsg.agent import Agent, example_batch  # noqa: E402

IMAGE = {'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)}
VECTOR = {'position': gymnasium.spaces.Box(-np.inf, np.inf, (5,), np.float32)}
ACT = {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}


class CentreDraws(tf.random.Generator):

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32, name=None):
        return tf.fill(shape, tf.cast((minval + (1 if maxval is None else maxval)) / 2, dtype))

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32, name=None):
        return tf.fill(shape, tf.cast(mean, dtype))


dists.tfd.TruncatedNormal._sample_n = lambda self, n, seed=None: tf.broadcast_to(
    self.loc, tf.concat([[n], tf.shape(self.loc)], 0))


def train(flags, init=None, worker=0):
    """(initial variables, final variables, last metrics) of an agent trained as the module says."""
    steps, flags = _pop(flags, '--steps', 2)
    overflow, flags = _pop(flags, '--overflow', 0)
    pixels, flags = _pop(flags, '--pixels', 1)
    obs = IMAGE if pixels else VECTOR
    config = config_lib.load(['--configs', 'debug', *flags])
    learner = learner_lib.Learner(config)
    with learner.strategy.scope():
        learner.rng = CentreDraws.from_seed(config.seed)
    agent = Agent(obs, ACT, config, learner)
    variables = agent.variables[:-1]  # not the generator's state
    for variable, value in zip(variables, init or ()):
        variable.assign(value)
    start = [np.asarray(v) for v in variables]
    batch = example_batch(agent, obs, (config.batch_size, config.batch_length), np.random.default_rng(worker))
    batch['is_first'][:, 0] = True
    batches = [batch] * steps
    if overflow:
        batches[1] = {**batch, 'reward': np.full_like(batch['reward'], np.inf)}
    stacked = {key: np.stack([b[key] for b in batches]) for key in batch}
    data = iter(learner.dataset(lambda size: tf.data.Dataset.from_tensor_slices(stacked).unbatch().batch(size),
                                config.batch_size))
    for _ in range(steps):
        metrics = agent.train(next(data))
    return start, [np.asarray(v) for v in variables], {k: v.numpy() for k, v in metrics.items()}


def compare(flags):
    start, one, one_metrics = train(flags)
    _, two, two_metrics = train([*flags, '--strategy', 'mirrored', '--strategy_devices', '2'], start)
    params = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(one, two) if a.size)
    metrics = max(float(np.max(np.abs(one_metrics[k] - two_metrics[k]) / np.maximum(np.abs(one_metrics[k]), 1e-3)))
                  for k in one_metrics)
    scalars = lambda m: {k: float(v) for k, v in m.items() if np.ndim(v) == 0}
    return {'params': params, 'metrics': metrics, 'default': scalars(one_metrics), 'mirrored': scalars(two_metrics)}


def _pop(flags, name, default):
    flags = list(flags)
    if name not in flags:
        return default, flags
    i = flags.index(name)
    value = type(default)(flags[i + 1])
    del flags[i:i + 2]
    return value, flags


if __name__ == '__main__' and sys.argv[1] == '--worker':
    worker = json.loads(__import__('os').environ['TF_CONFIG'])['task']['index']
    _, final, _ = train(sys.argv[3:], worker=worker)
    np.savez(sys.argv[2], *final)
elif __name__ == '__main__':
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    print(json.dumps([compare(case.split(',')) for case in sys.argv[1:]]))
