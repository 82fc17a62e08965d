"""The resumable training loop every offline stage shares: updates from a batch source, metrics to
TensorBoard and metrics.jsonl under the stage's prefix, a progress line with ETA, and a named
checkpoint (model, optimizer, step) saved every `save_every` updates and at the end, from which a
killed stage resumes.
"""
import pathlib
import time

import elements
import numpy as np

from common import checkpoint
from common import logger as logger_lib


class StageError(ValueError):
    """One line: a stage cannot run (e.g. an earlier stage's output is missing)."""


def checkpoint_path(logdir, name):
    return pathlib.Path(logdir) / f'{name}.npz'


def restore(logdir, name, variables, prefix, what):
    """Loads `variables` (a sub-module keyed under `prefix`) from the named checkpoint of an earlier
    stage; a missing file or variable is a StageError naming the stage to run."""
    path = checkpoint_path(logdir, name)
    if not path.exists():
        raise StageError(f'{path} does not exist; run the {what} stage first')
    try:
        missing, _ = checkpoint.load_partial(path, variables, prefix)
    except checkpoint.CheckpointError as e:
        raise StageError(str(e)) from None
    if missing:
        raise StageError(f'{path} lacks {len(missing)} variables under {prefix!r} (e.g. {missing[0]}); '
                         'was it written with another config?')


def updates(logdir, name):
    """The update count saved in the named checkpoint, or None if there is none."""
    path = checkpoint_path(logdir, name)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            return int(saved['counters/step']) if 'counters/step' in saved.files else 0
    except Exception as e:
        raise StageError(f'{path} is unreadable ({type(e).__name__}); delete it and run its stage again') from None


def require_done(logdir, name, steps, stage):
    """Raises a StageError unless the named checkpoint exists and holds at least `steps` updates."""
    done = updates(logdir, name)
    if done is None:
        raise StageError(f'{checkpoint_path(logdir, name)} does not exist; run the {stage} stage first')
    if done < steps:
        raise StageError(f'{checkpoint_path(logdir, name)} holds {done} of {steps} updates; run the {stage} stage to finish it')


def make_logger(logdir):
    """The run's logger: records are stamped with the update count of the stage that writes them
    (its keys carry the stage's name), set through `logger.step`."""
    return logger_lib.make(logdir, elements.Counter(0), 1)


def train(name, logdir, variables, update, batches, steps, save_every, log_every, logger, evaluate=None,
          inputs=None, keep=2, meta=None):
    """Runs `update(batch) -> metrics` on `next(batches)` until `steps` updates are done, resuming from
    LOGDIR/NAME.npz; every `log_every` updates also logs `evaluate() -> metrics` if given (under the
    stage's name, unless a key names its own group: 'eval/mse'). `inputs` ({checkpoint name: its update
    count}) are the earlier stages' outputs this one learns from; they are saved with it, and a
    checkpoint made from other ones is refused rather than resumed. `meta` (a dict of JSON values) is
    saved with every checkpoint (common.checkpoint.read_meta)."""
    path = checkpoint_path(logdir, name)
    done, inputs = 0, {f'input_{key}': value for key, value in (inputs or {}).items()}
    if path.exists():
        try:
            counters = checkpoint.load(path, variables)
        except checkpoint.CheckpointError as e:
            raise StageError(str(e)) from None
        stale = [key[len('input_'):] for key, value in inputs.items() if counters.get(key) != value]
        if stale:
            raise StageError(f'{path} was trained on another {stale[0]}.npz (now at update {inputs["input_" + stale[0]]}); '
                             'delete it to train it again, or use a new logdir')
        done = counters.get('step', 0)
        if done >= steps:
            print(f'{name}: done ({done} updates, {path})', flush=True)
            return
        print(f'{name}: resumed from {path} at update {done}', flush=True)
    step = logger.step
    step.load(done)
    means = logger_lib.Mean()
    start, start_step = time.monotonic(), done
    while int(step) < steps:
        metrics = {key: np.asarray(value) for key, value in update(next(batches)).items()}
        bad = [key for key, value in metrics.items() if not np.all(np.isfinite(value))]
        if bad:
            raise StageError(f'{name}: non-finite {", ".join(bad)} at update {int(step)}; the last checkpoint is kept')
        means.add(metrics, prefix=name)
        step.increment()
        if int(step) % log_every == 0 or int(step) == steps:
            last = means.result()
            if evaluate:
                last.update({key if '/' in key else f'{name}/{key}': value for key, value in evaluate().items()})
            logger.add(last)
            logger.write()
            rate = (int(step) - start_step) / max(time.monotonic() - start, 1e-9)
            shown = ' | '.join(f'{key.removeprefix(name + "/")} {float(value):.4g}' for key, value in last.items()
                               if np.ndim(value) == 0 and not key.endswith('grad_norm'))
            print(f'{name}: update {int(step):,}/{steps:,} | {shown} | {rate:.1f} updates/s | '
                  f'ETA {logger_lib.duration((steps - int(step)) / rate) if rate else "-"}', flush=True)
        if int(step) % save_every == 0 or int(step) == steps:
            checkpoint.save(path, variables, {'step': int(step), **inputs}, keep=keep, meta=meta)


def log(logger, metrics, step=0):
    """Writes one record of `metrics` (a stage's results) at `step`."""
    logger.step.load(step)
    logger.add(metrics)
    logger.write()


def batch_source(make_batch, rng):
    """An endless iterator of make_batch(rng)."""
    while True:
        yield make_batch(rng)


