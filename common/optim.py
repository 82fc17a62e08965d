"""Adam with global-norm gradient clipping and, for float16, dynamic loss scaling; under a
tf.distribute strategy the gradients are those of the global batch, all-reduced before both."""
import keras
import tensorflow as tf

from common import replicas


class Optimizer:

    def __init__(self, name, lr, eps, clip, wd, precision='float32'):
        self.name = name
        self._clip = clip
        # Keras multiplies weight decay by the learning rate; `wd` is the per-step decay, as in
        # DreamerV2's decoupled AdamW, so it is divided back out.
        self._adam = keras.optimizers.Adam(lr, epsilon=eps, weight_decay=wd / lr if wd else None, name=name)
        # float16 gradients underflow without scaling; bfloat16 has float32's range and needs none.
        self._scaling = precision == 'mixed_float16'
        if self._scaling:
            # Replicas see the same all-reduced gradients, hence the same scale: the first one's is kept.
            self._scale = tf.Variable(2.0 ** 15, trainable=False, name=f'{name}_loss_scale',
                                      aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self._good_steps = tf.Variable(0, trainable=False, name=f'{name}_good_steps',
                                           aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @property
    def variables(self):
        extra = [self._scale, self._good_steps] if self._scaling else []
        return list(self._adam.variables) + extra

    def build(self, variables):
        self._adam.build(variables)

    def __call__(self, tape, loss, variables):
        """Applies one update from `loss` recorded on `tape`; returns loss and gradient metrics."""
        # Scaling the seed of backprop equals scaling the loss on the tape, which has stopped recording.
        # Each replica's loss is its shard's mean: at 1 / replicas the replicas' gradients sum to the
        # global batch's mean gradient (which the clipping and the norm metric must see), each of the
        # size one device would compute, so float16 overflows where it would.
        seed = tf.cast(self._scale, loss.dtype) if self._scaling else None
        if replicas.count() > 1:
            seed = (1.0 if seed is None else seed) / replicas.count()
        grads = tape.gradient(loss, variables, output_gradients=seed)
        if self._scaling:
            grads = [g / self._scale for g in grads]
        grads = replicas.total(grads)
        norm = tf.linalg.global_norm(grads)
        grads, _ = tf.clip_by_global_norm(grads, self._clip, norm)
        metrics = {f'{self.name}_loss': loss}
        if not self._scaling:
            self._apply(grads, variables)
            metrics[f'{self.name}_grad_norm'] = norm
            return metrics
        # An overflow is routine under loss scaling: the step is skipped and reported as such, so
        # the training loop's non-finite check only fires on real divergence.
        finite = tf.math.is_finite(norm)
        self._apply_if_finite(grads, variables, finite)
        metrics[f'{self.name}_grad_norm'] = tf.where(finite, norm, 0.0)
        metrics[f'{self.name}_overflow'] = 1.0 - tf.cast(finite, tf.float32)
        metrics[f'{self.name}_loss_scale'] = self._scale.read_value()
        return metrics

    def _apply(self, grads, variables):
        """Keras's apply sums the replicas' gradients; each hands it its share of the mean."""
        share = replicas.count()
        self._adam.apply_gradients(zip(grads if share == 1 else [g / share for g in grads], variables))

    def _apply_if_finite(self, grads, variables, finite):
        """Skips the update and halves the scale on overflow; doubles it after 1000 clean steps.

        Keras's LossScaleOptimizer pattern: a replica may not run a tf.cond whose branch merges the
        replicas (applying gradients does), so the cond runs in the cross-replica context, on the first
        replica's `finite` (all agree: their gradients are all-reduced), and applies on every replica."""
        def apply(strategy):
            strategy.extended.call_for_each_replica(self._apply, args=(grads, variables))
            self._good_steps.assign_add(1)
            grow = self._good_steps >= 1000
            self._scale.assign(tf.where(grow, self._scale * 2, self._scale))
            self._good_steps.assign(tf.where(grow, 0, self._good_steps))
            return tf.constant(True)

        def skip():
            self._scale.assign(tf.maximum(self._scale / 2, 1.0))
            self._good_steps.assign(0)
            return tf.constant(False)

        def cross_replica(strategy, finite):
            tf.cond(strategy.experimental_local_results(finite)[0], lambda: apply(strategy), skip)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite,))
