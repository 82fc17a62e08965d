"""Adam with global-norm gradient clipping and, for float16, dynamic loss scaling."""
import keras
import tensorflow as tf


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
            self._scale = tf.Variable(2.0 ** 15, trainable=False, name=f'{name}_loss_scale')
            self._good_steps = tf.Variable(0, trainable=False, name=f'{name}_good_steps')

    @property
    def variables(self):
        extra = [self._scale, self._good_steps] if self._scaling else []
        return list(self._adam.variables) + extra

    def build(self, variables):
        self._adam.build(variables)

    def __call__(self, tape, loss, variables):
        """Applies one update from `loss` recorded on `tape`; returns loss and gradient metrics."""
        # Scaling the seed of backprop equals scaling the loss on the tape, which has stopped recording.
        seed = tf.cast(self._scale, loss.dtype) if self._scaling else None
        grads = tape.gradient(loss, variables, output_gradients=seed)
        if self._scaling:
            grads = [g / self._scale for g in grads]
        norm = tf.linalg.global_norm(grads)
        grads, _ = tf.clip_by_global_norm(grads, self._clip, norm)
        metrics = {f'{self.name}_loss': loss}
        if not self._scaling:
            self._adam.apply_gradients(zip(grads, variables))
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

    def _apply_if_finite(self, grads, variables, finite):
        """Skips the update and halves the scale on overflow; doubles it after 1000 clean steps."""
        def apply():
            self._adam.apply_gradients(zip(grads, variables))
            self._good_steps.assign_add(1)
            grow = self._good_steps >= 1000
            self._scale.assign(tf.where(grow, self._scale * 2, self._scale))
            self._good_steps.assign(tf.where(grow, 0, self._good_steps))
            return tf.constant(True)

        def skip():
            self._scale.assign(tf.maximum(self._scale / 2, 1.0))
            self._good_steps.assign(0)
            return tf.constant(False)

        tf.cond(finite, apply, skip)
