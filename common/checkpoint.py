"""Checkpoints as one npz of variables plus counters, replaced atomically so a kill mid-write keeps
the previous checkpoint intact."""
import os
import pathlib
import tempfile

import numpy as np


class CheckpointMismatch(ValueError):
    pass


def _name(variable):
    return getattr(variable, 'path', None) or variable.name


def save(path, variables, counters):
    """Writes `variables` (in order) and `counters` (a dict of ints) to `path`."""
    path = pathlib.Path(path)
    arrays = {f'var{i}': np.asarray(v.numpy()) for i, v in enumerate(variables)}
    arrays['names'] = np.array([_name(v) for v in variables])
    arrays.update({f'counter_{k}': np.int64(v) for k, v in counters.items()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path, variables):
    """Assigns saved values to `variables` and returns the counters; refuses a different model."""
    with np.load(path, allow_pickle=False) as data:
        names = list(data['names'])
        if len(names) != len(variables):
            raise CheckpointMismatch(
                f'checkpoint {path} holds {len(names)} variables but the model has {len(variables)}; '
                'was it written with a different config?')
        for i, (name, variable) in enumerate(zip(names, variables)):
            value = data[f'var{i}']
            # Shapes, not names: Keras numbers auto-named layers per process, so names can differ.
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointMismatch(
                    f'checkpoint {path} has {name} {value.shape} where the model has '
                    f'{_name(variable)} {tuple(variable.shape)}; was it written with a different config?')
        for i, variable in enumerate(variables):
            variable.assign(data[f'var{i}'])
        return {k[len('counter_'):]: int(data[k]) for k in data.files if k.startswith('counter_')}
