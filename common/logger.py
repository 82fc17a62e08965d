"""Metrics go to the terminal, `metrics.jsonl` and TensorBoard event files in the logdir.

Values logged through one elements.Logger: scalars go to metrics.jsonl and TensorBoard, and the
few in TERMINAL_KEYS to the terminal too; 1-D arrays become TensorBoard histograms, 3-D arrays
images, and 4-D [T, H, W, C] uint8 arrays GIF videos. Status prints a progress line between logs.

One x-axis: the step of every record (jsonl `step`, TensorBoard step) is env frames, i.e. agent
steps times the action repeat; agent steps are logged as the scalar AGENT_STEPS. Runs written
before that logged agent steps; a metrics.jsonl without AGENT_STEPS is one of those.
"""
import json
import pathlib
import time

import elements
import numpy as np

from common import files
from common.video import encode_gif

TERMINAL_KEYS = (
    'train/return', 'eval/return', 'train/model_opt_loss', 'train/image_loss', 'train/reward_loss', 'train/kl',
    'train/gate_open_mean', 'train/actor_opt_loss', 'train/critic_opt_loss', 'train/actor_ent',
    'train/imag_action_mag', 'stats/updates_per_s', 'stats/agent_steps')
AGENT_STEPS = 'stats/agent_steps'
WALL_HOURS = 'stats/wall_hours'  # hours the run has been running, over all its resumes (RunClock)
METRICS = 'metrics.jsonl'


def make(logdir, step, action_repeat, files=True):
    """A logger whose records are stamped with env frames: the agent step counter `step` times
    `action_repeat`. files=False: the terminal only (a worker that is not the chief writes nothing)."""
    outputs = [TerminalOutput(TERMINAL_KEYS)]
    if files:
        outputs += [elements.logger.JSONLOutput(logdir, METRICS, parallel=False), TensorBoardOutput(logdir)]
    return elements.Logger(step, outputs, multiplier=action_repeat)


def read_records(path):
    """The records of a metrics.jsonl. A last line cut short by a kill mid-write is left out (the run
    rewrites that step); a bad line elsewhere is a one-line ValueError naming the file and line."""
    lines = [line for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f'{path}: line {number} is not JSON; the file is corrupt') from None
    return records


def logs_frames(records):
    """Whether metrics.jsonl records (dicts) are stamped with env frames (written since AGENT_STEPS)."""
    return any(AGENT_STEPS in record for record in records)


def convert_to_frames(logdir, action_repeat):
    """Rewrites an older run's metrics.jsonl, stamped with agent steps, to env frames, so a resumed run
    keeps one x-axis; appends an AGENT_STEPS record as the mark that it is done. Atomic; returns
    whether anything was converted. (TensorBoard event files are left as they are.)"""
    path = pathlib.Path(logdir) / METRICS
    if not path.exists():
        return False
    records = read_records(path)
    if not records or logs_frames(records):
        return False
    for record in records:
        record['step'] *= action_repeat
    last = max(record['step'] for record in records)
    records.append({'step': last, AGENT_STEPS: last // action_repeat})
    files.write_text(path, ''.join(json.dumps(record) + '\n' for record in records))
    return True


class TerminalOutput(elements.logger.TerminalOutput):
    """Prints only the scalars named in `keys`, in that order. (elements' own `pattern` filter
    would head every block with the whole pattern.)"""

    def __init__(self, keys):
        super().__init__()
        self._order = {key: index for index, key in enumerate(keys)}

    def __call__(self, summaries):
        # A summary is (step, name, value).
        chosen = sorted((summary for summary in summaries if summary[1] in self._order),
                        key=lambda summary: self._order[summary[1]])
        if chosen:
            super().__call__(chosen)


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


class Rates:
    """Agent steps and updates per second of wall-clock time since the previous call.

    `counts()` returns the current (agent steps, updates)."""

    def __init__(self, counts, clock=time.monotonic):
        self._counts, self._clock = counts, clock
        self._last = (clock(), *counts())

    def __call__(self):
        """Returns (agent steps, updates, agent steps/s, updates/s)."""
        now, (steps, updates) = self._clock(), self._counts()
        then, then_steps, then_updates = self._last
        self._last = (now, steps, updates)
        elapsed = max(now - then, 1e-9)
        return steps, updates, (steps - then_steps) / elapsed, (updates - then_updates) / elapsed


class RunClock:
    """Seconds a run has been running over all its processes: `before` (the count saved with the last
    checkpoint) plus this process's time since it started. Time between a kill and the resume is not
    counted; work redone after an unsaved kill is counted twice, as it was spent twice."""

    def __init__(self, before=0, clock=time.monotonic):
        self._before, self._clock, self._start = before, clock, clock()

    def __call__(self):
        return self._before + self._clock() - self._start


class Status:
    """A progress line every `every` seconds of wall-clock time (0: never): the phase, agent steps
    out of `total_steps` (training steps; evaluation does not advance them), env frames, updates/s
    and env frames/s since the previous line, the time left for the remaining agent steps at that
    rate, and the last eval return. Set `phase` and `eval_return` as the run goes.

    maybe_print() only reads the clock until a line is due, so it is cheap enough for every step.
    """

    def __init__(self, every, total_steps, action_repeat, counts, clock=time.monotonic):
        self.phase = 'start'
        self.eval_return = None
        self._every, self._total, self._repeat = every, total_steps, action_repeat
        self._clock = clock
        self._rates = Rates(counts, clock)
        self._printed = clock()

    def maybe_print(self):
        now = self._clock()
        if not self._every or now - self._printed < self._every:
            return
        self._printed = now
        steps, _, steps_per_s, updates_per_s = self._rates()
        left = max(self._total - steps, 0)
        eta = duration(left / steps_per_s) if steps_per_s > 0 else '-'
        last_eval = '-' if self.eval_return is None else f'{self.eval_return:.1f}'
        print(f'status: {self.phase} | agent step {steps:,}/{self._total:,} | env frames {steps * self._repeat:,} | '
              f'{updates_per_s:.2f} updates/s | {steps_per_s * self._repeat:.1f} env frames/s | ETA {eta} | '
              f'last eval return {last_eval}', flush=True)


def duration(seconds):
    """'2h05m', '3m07s' or '42s': an ETA for a progress line."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f'{hours}h{minutes:02d}m'
    return f'{minutes}m{seconds:02d}s' if minutes else f'{seconds}s'
