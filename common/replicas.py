"""Statistics over the global batch inside a train step that tf.distribute runs on several replicas,
each on its shard of the batch (the strategy itself lives in vsg/learner.py). With one replica each
function returns its input untouched and adds no op, so a run without a strategy computes exactly
what it did before.
"""
import tensorflow as tf


def count():
    """Replicas running this step (1 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def total(values):
    """The sum over replicas of a structure of tensors (e.g. each replica's share of the gradients)."""
    return _all_reduce(tf.distribute.ReduceOp.SUM, values)


def mean(values):
    """The mean over replicas of a structure of tensors."""
    return _all_reduce(tf.distribute.ReduceOp.MEAN, values)


def gather(x):
    """`x` of every replica concatenated along axis 0 (the values of the global batch), no gradient."""
    if count() == 1:
        return x
    return tf.distribute.get_replica_context().all_gather(tf.stop_gradient(x), axis=0)


def floor(local_mean, free):
    """max(global mean, free) as a loss term: free nats floor the mean over the global batch, not over a
    shard. Its value is the global one; its gradient is the shard mean's where the global mean is above
    `free` (tf.maximum's rule), which the optimizer's sum of the replicas' shares (common/optim.py)
    turns into the global mean's."""
    if count() == 1:
        return tf.maximum(local_mean, free)
    global_mean = mean(tf.stop_gradient(local_mean))
    above = local_mean - tf.stop_gradient(local_mean) + global_mean
    return tf.where(global_mean >= free, above, tf.cast(free, local_mean.dtype))


def _all_reduce(op, values):
    if count() == 1:
        return values
    return tf.distribute.get_replica_context().all_reduce(op, values)
