"""Checkpoints: one npz holding each variable under a key made from its path, plus counters.

A save replaces the file atomically (temp file, fsync, rename), so a kill mid-write keeps the
previous checkpoint; older ones can be kept beside it as checkpoint.1.npz (the newest),
checkpoint.2.npz, ... Loading matches variables by key, never by position, so two variables of the
same shape cannot load swapped, and an unreadable file gives way to the newest readable older one.
Checkpoints of the old positional format (var0, var1, ... with `names`) are converted on load.
"""
import collections
import json
import os
import pathlib
import re
import sys
import zipfile

import numpy as np

from common import files

VARIABLES = 'variables/'
COUNTERS = 'counters/'
META = 'meta.json'  # what a model was built from, saved by whoever needs to rebuild it (read_meta)
_NUMBERED = re.compile(r'(.*?)(?:_(\d+))?')  # 'dense_17' -> ('dense', '17')


class CheckpointError(ValueError):
    """One line naming the checkpoint file and what is wrong with it."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint holds a different model."""


class CheckpointUnreadable(CheckpointError):
    """The file is truncated, corrupt or not a checkpoint."""


def keys(variables):
    """Unique checkpoint keys that depend only on the model's structure.

    A key is the variable's Keras path ('encoder/conv2d_1/kernel') or tf name ('updates:0' ->
    'updates'), with auto-numbered layers renumbered within their parent in creation order, since
    Keras numbers them per process (a second agent built in one process has 'conv2d_5' where the
    first has 'conv2d_1'); an optimizer slot is keyed under its variable's key
    ('model_opt/encoder/conv2d/kernel/momentum'). Raises ValueError if two variables share a key.
    """
    result = _canonical([_path(v) for v in variables])
    shared = sorted(key for key, count in collections.Counter(result).items() if count > 1)
    if shared:
        raise ValueError(f'variables share the checkpoint keys {", ".join(shared)}; give them distinct names')
    return result


def save(path, variables, counters, keep=1, meta=None):
    """Writes `variables` under their keys, `counters` (a dict of ints) and `meta` (a dict of JSON
    values, if given) to `path`, keeping the `keep - 1` previous checkpoints beside it as path.1.npz
    (the newest), path.2.npz, ..."""
    path = pathlib.Path(path)
    arrays = {VARIABLES + key: np.asarray(v.numpy()) for key, v in zip(keys(variables), variables)}
    arrays.update({COUNTERS + name: np.int64(value) for name, value in counters.items()})
    if meta is not None:
        arrays[META] = np.array(json.dumps(meta, sort_keys=True))
    files.write(path, lambda file: np.savez(file, allow_pickle=False, **arrays),
                before_replace=lambda: _keep_previous(path, keep))


def load(path, variables):
    """Restores every one of `variables` from `path` (or, if it is unreadable, from the newest
    readable kept copy, with a warning) and returns the saved counters. Raises CheckpointError with
    one line if no file can be read or a variable is missing, unexpected or of another shape; then
    nothing is assigned."""
    path, arrays = _read_newest(path)
    saved, current = _pair_up(path, arrays, variables)
    missing, unexpected, reshaped = _compare(saved, current, variables)
    if missing or unexpected or reshaped:
        raise CheckpointMismatch(
            f'checkpoint {path} does not fit this model (was it written with a different config?): '
            + '; '.join(_listed(label, found) for label, found in (
                ('missing', missing), ('unexpected', unexpected), ('other shape', reshaped)) if found))
    for key, variable in zip(current, variables):
        variable.assign(saved[key])
    return _counters(arrays)


def read_meta(path):
    """The `meta` dict saved with `path` (or, if it is unreadable, with the newest readable kept copy),
    or None if it has none. CheckpointUnreadable if no file can be read."""
    _, arrays = _read_newest(path)
    return json.loads(str(arrays[META])) if META in arrays else None


def load_partial(path, variables, prefix):
    """Restores a sub-module into a model that may differ elsewhere: `variables` are all of the
    sub-module's (e.g. agent.wm.encoder.variables) and `prefix` selects its part of the checkpoint
    (e.g. 'encoder/'). Returns (missing, unexpected): keys of `variables` the checkpoint lacks under
    `prefix`, and keys under `prefix` that none of `variables` has. A shape mismatch raises
    CheckpointMismatch and assigns nothing."""
    path, arrays = _read_newest(path)
    saved, current = _pair_up(path, arrays, variables)
    saved = {key: value for key, value in saved.items() if key.startswith(prefix)}
    missing, unexpected, reshaped = _compare(saved, current, variables)
    if reshaped:
        raise CheckpointMismatch(f'checkpoint {path} does not fit under {prefix!r}: {_listed("other shape", reshaped)}')
    for key, variable in zip(current, variables):
        if key in saved:
            variable.assign(saved[key])
    return missing, unexpected


def kept_copies(path):
    """The older checkpoints kept beside `path`, newest first."""
    path = pathlib.Path(path)
    numbered = {}
    for copy in path.parent.glob(f'{path.stem}.*{path.suffix}'):
        index = copy.name[len(path.stem) + 1:-len(path.suffix)]
        if index.isdigit():
            numbered[int(index)] = copy
    return [numbered[index] for index in sorted(numbered)]


def _path(variable):
    return getattr(variable, 'path', None) or variable.name


def _canonical(paths):
    """keys() for a list of raw paths, also those stored in old checkpoints."""
    paths = [path.removesuffix(':0') for path in paths]
    parts = [path.split('/') for path in paths]
    scopes = _renumbered_scopes(parts)
    scoped = lambda p: [scopes[tuple(p[:i + 1])] for i in range(len(p) - 1)]
    result = ['/'.join(scoped(p) + p[-1:]) for p in parts]
    # Keras names an optimizer slot '<its variable's path, / as _>_<slot>' in the optimizer's scope.
    flat = {path.replace('/', '_'): i for i, path in enumerate(paths)}
    for i, p in enumerate(parts):
        name = p[-1]
        cuts = [m.start() for m in re.finditer('_', name)] if len(p) > 1 else []
        for cut in reversed(cuts):  # the longest variable path first
            if name[:cut] in flat:
                result[i] = '/'.join(scoped(p) + [result[flat[name[:cut]]], name[cut + 1:]])
                break
    return result


def _renumbered_scopes(parts):
    """{raw scope prefix: its new last name}: within each parent, layers of one base name become
    base, base_1, ... in the order of their Keras numbers (= creation order)."""
    groups = collections.defaultdict(set)
    for p in parts:
        for i in range(len(p) - 1):
            base = _NUMBERED.fullmatch(p[i]).group(1)
            groups[tuple(p[:i]), base].add(tuple(p[:i + 1]))
    number = lambda prefix: (int(_NUMBERED.fullmatch(prefix[-1]).group(2) or 0), prefix[-1])
    names = {}
    for (_, base), prefixes in groups.items():
        for rank, prefix in enumerate(sorted(prefixes, key=number)):
            names[prefix] = f'{base}_{rank}' if rank else base
    return names


def _read_newest(path):
    """(file, arrays) of the newest readable of `path` and its kept copies; each one skipped is
    reported in a one-line warning."""
    path = pathlib.Path(path)
    candidates = [path, *kept_copies(path)]
    for candidate, older in zip(candidates, candidates[1:] + [None]):
        try:
            return candidate, _read(candidate)
        except CheckpointUnreadable as e:
            if older is None:
                raise
            print(f'warning: {e}; falling back to {older}', file=sys.stderr, flush=True)


def _read(path):
    """Every array in `path`, read in full, so that a truncated or corrupt file fails here before
    anything is assigned."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        reason = str(e).splitlines()[0] if str(e) else ''
        raise CheckpointUnreadable(
            f'checkpoint {path} is unreadable ({type(e).__name__}: {reason})') from None
    if 'names' in arrays:
        complete = all(f'var{i}' in arrays for i in range(len(arrays['names'])))
    else:
        complete = any(name.startswith(VARIABLES) for name in arrays)
    if not complete:
        raise CheckpointUnreadable(f'checkpoint {path} is unreadable (variables are missing)')
    return arrays


def _pair_up(path, arrays, variables):
    """(saved values by key, the keys of `variables` in order), converting an old positional
    checkpoint by its stored names."""
    if 'names' not in arrays:
        saved = {
            name[len(VARIABLES):]: value for name, value in arrays.items() if name.startswith(VARIABLES)}
        return saved, keys(variables)
    names = [str(name) for name in arrays['names']]
    values = [arrays[f'var{i}'] for i in range(len(names))]
    saved = _canonical(names)
    if len(set(saved)) == len(saved):
        return dict(zip(saved, values)), keys(variables)
    # Repeated names leave only the order to tell which value is whose.
    if names == [_path(v) for v in variables]:
        positions = [f'var{i}' for i in range(len(values))]
        return dict(zip(positions, values)), positions
    raise CheckpointMismatch(
        f'checkpoint {path} is in the old format with repeated names that do not match this model in '
        'order, so its values cannot be told apart')


def _compare(saved, current, variables):
    """(missing, unexpected, other shape) between saved values and the model's keyed variables."""
    known = set(current)
    missing = [key for key in current if key not in saved]
    unexpected = [key for key in saved if key not in known]
    reshaped = [
        f'{key} {saved[key].shape} vs {tuple(v.shape)} here' for key, v in zip(current, variables)
        if key in saved and tuple(saved[key].shape) != tuple(v.shape)]
    return missing, unexpected, reshaped


def _counters(arrays):
    prefix = 'counter_' if 'names' in arrays else COUNTERS  # the old format's counters
    return {name[len(prefix):]: int(value) for name, value in arrays.items() if name.startswith(prefix)}


def _keep_previous(path, keep):
    """Shifts the kept copies one place older (the oldest drops out) and keeps the current
    checkpoint as path.1.npz by a hard link, so that `path` itself never goes missing."""
    if keep < 2 or not path.exists():
        return
    for index in range(keep - 1, 1, -1):
        newer = _kept_path(path, index - 1)
        if newer.exists():
            os.replace(newer, _kept_path(path, index))
    first = _kept_path(path, 1)
    first.unlink(missing_ok=True)
    os.link(path, first)


def _kept_path(path, index):
    return path.with_name(f'{path.stem}.{index}{path.suffix}')


def _listed(label, items, shown=3):
    more = f', ... ({len(items)} in all)' if len(items) > shown else ''
    return f'{label} ' + ', '.join(items[:shown]) + more
