"""Metrics go to the terminal, `metrics.jsonl` and TensorBoard event files in the logdir.

Values logged through one elements.Logger: scalars go everywhere; 1-D arrays become TensorBoard
histograms, 3-D arrays images, and 4-D [T, H, W, C] uint8 arrays GIF videos.
"""
import elements
import numpy as np

from common.video import encode_gif


def make(logdir, step):
    outputs = [
        elements.logger.TerminalOutput(),
        elements.logger.JSONLOutput(logdir, 'metrics.jsonl', parallel=False),
        TensorBoardOutput(logdir),
    ]
    return elements.Logger(step, outputs)


class TensorBoardOutput(elements.logger.AsyncOutput):
    """Writes with our own TF summary writer. elements' TensorBoardOutput is avoided on purpose:
    its constructor hides all GPUs from TensorFlow in the training process."""

    def __init__(self, logdir, fps=20):
        super().__init__(self._write, parallel=True)
        self._logdir = str(logdir)
        self._fps = fps
        self._writer = None

    def _write(self, summaries):
        import tensorflow as tf
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._logdir, max_queue=1000, flush_millis=10_000)
        with self._writer.as_default():
            for step, name, value in summaries:
                if isinstance(value, str):
                    tf.summary.text(name, value, step)
                elif value.ndim == 0:
                    tf.summary.scalar(name, value, step)
                elif value.ndim == 1:
                    tf.summary.histogram(name, value, step)
                elif value.ndim == 3:
                    tf.summary.image(name, value[None], step)
                elif value.ndim == 4:
                    self._video(name, value, step)
        self._writer.flush()

    def _video(self, name, frames, step):
        """A GIF as an encoded image summary, which TensorBoard's image dashboard animates."""
        import tensorflow as tf
        from tensorboard.compat.proto import summary_pb2
        frames = np.clip(frames, 0, 255).astype(np.uint8)
        _, height, width, channels = frames.shape
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=encode_gif(frames, self._fps))
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, image=image)])
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step)


class Mean:
    """Averages metrics between two writes of the logger (elementwise for arrays)."""

    def __init__(self):
        self._sums, self._counts = {}, {}

    def add(self, metrics, prefix=None):
        for key, value in metrics.items():
            key = f'{prefix}/{key}' if prefix else key
            self._sums[key] = self._sums.get(key, 0.0) + np.asarray(value, np.float64)
            self._counts[key] = self._counts.get(key, 0) + 1

    def result(self):
        means = {key: total / self._counts[key] for key, total in self._sums.items()}
        self._sums, self._counts = {}, {}
        return means
