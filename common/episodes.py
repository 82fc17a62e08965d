"""The episode file format: the one module that names, writes, reads, checks, lists, counts and copies
episode files, and reads and writes a dataset's `dataset.json`.

An episode is a dict of numpy arrays sharing one leading length L: the env's observation keys
(`image`, state vectors, `reward`, `is_first`, `is_last`, `is_terminal`, the suite's extras) plus
`action`, the action that led to each observation. Each is one `{timestamp}-{uuid}-{L}.npz` file
(np.savez_compressed, loaded without pickle), written atomically, so names sort chronologically and
state their length. Any directory of them is a replay (common.replay) and an offline dataset
(vsg.offline); `dataset.json` beside them records how vsg.collect made them.

Imported by env workers and collect processes, which must never load TensorFlow: numpy only.
"""
import datetime
import json
import pathlib
import re
import uuid
import warnings

import numpy as np

from common import files

# What the world model and the tools built on it read; an episode without them is not one.
REQUIRED = ('reward', 'is_first', 'is_last', 'is_terminal', 'action')
DATASET_FILE = 'dataset.json'
_NAME = re.compile(r'^\d{8}T\d{6}\.\d{6}-[0-9a-f]{32}-(\d+)\.npz$')


class EpisodeError(ValueError):
    """One line saying what is wrong with an episode, an episode file or a dataset.json."""


def check(episode, required=REQUIRED, name='episode'):
    """Raises EpisodeError (its message starting with `name`) unless `episode` holds the `required`
    keys and arrays sharing one leading length >= 1, none of Python objects."""
    _require(episode, required, name)
    if not episode:
        raise EpisodeError(f'{name}: has no arrays')
    lengths = {key: value.shape[0] if value.ndim else None for key, value in episode.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values() or 0 in lengths.values():
        raise EpisodeError(f'{name}: arrays must share one leading length >= 1, got {lengths}')
    pickled = [key for key, value in episode.items() if value.dtype == object]
    if pickled:
        raise EpisodeError(f'{name}: keys {pickled} hold Python objects; files are loaded without pickle')


def _require(keys, required, name):
    missing = [key for key in required if key not in keys]
    if missing:
        raise EpisodeError(f"{name}: lacks {', '.join(map(repr, missing))} (it has {', '.join(sorted(keys))})")


def spec(episode):
    """{key: (dtype, per-step shape)}: what episodes of one replay must share."""
    return {key: (value.dtype, value.shape[1:]) for key, value in episode.items()}


def length(episode):
    return len(next(iter(episode.values())))


def write(directory, episode):
    """Checks `episode` and saves it as a new file of `directory`, atomically; returns its path."""
    episode = {key: np.asarray(value) for key, value in episode.items()}
    check(episode)
    directory = pathlib.Path(directory)
    # UTC with microseconds, so names sort chronologically even for episodes finished within
    # one second or across a daylight-saving change; loading relies on that order.
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%f')
    path = directory / f'{timestamp}-{uuid.uuid4().hex}-{length(episode)}.npz'
    files.write(path, lambda file: np.savez_compressed(file, **episode))
    files.sync_directory(directory)  # makes the rename itself survive a power loss
    return path


def read(path, required=REQUIRED, only=None):
    """The episode of file `path`, checked as `check` does; EpisodeError if the file is truncated,
    corrupt, foreign or lacks a `required` key. only: load just these keys (the others, images
    say, are then never decompressed)."""
    name = f'unreadable episode {path}'
    try:
        # Open the file ourselves: np.load leaks its own handle when the zip is unreadable.
        with open(path, 'rb') as file, np.load(file, allow_pickle=False) as data:
            _require(data.files, required, name)
            episode = {key: data[key] for key in (data.files if only is None else only)}
        check(episode, (), name)
    except EpisodeError:
        raise
    # A truncated or foreign file can fail in many ways (zip, zlib, format, shape, a missing key).
    except Exception as error:
        raise EpisodeError(f'{name}: {type(error).__name__}: {error}') from None
    return episode


def read_or_skip(path, required=REQUIRED):
    """read(path), or None with a warning: one bad file must not stop a run from loading the rest."""
    try:
        return read(path, required)
    except EpisodeError as error:
        warnings.warn(f'Skipping {error}')
        return None


def paths(directory):
    """The episode files of `directory`, oldest first; none if it does not exist. A write cut short
    leaves only a hidden temp file, which is never listed."""
    return sorted(path for path in pathlib.Path(directory).glob('*.npz') if not path.name.startswith('.'))


def count(directory):
    return len(paths(directory))


def file_length(path):
    """The steps of an episode file: from its name when it has the format's, else by reading it."""
    match = _NAME.match(pathlib.Path(path).name)
    return int(match.group(1)) if match else length(read(path, only=REQUIRED[:1]))


def steps(directory):
    return sum(file_length(path) for path in paths(directory))


def copy(source, directory):
    """Copies the episode files of `source` that `directory` lacks, keeping their names, each atomically.

    Returns how many were copied. Names are unique, so a copy cut short by a kill is completed by
    calling this again, and nothing is copied twice. Unreadable files are skipped with a warning.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in paths(source):
        target = directory / path.name
        if target.exists() or read_or_skip(path) is None:
            continue
        files.write(target, lambda file: file.write(path.read_bytes()))
        copied += 1
    if copied:
        files.sync_directory(directory)
    return copied


def read_info(directory):
    """DIR/dataset.json as a dict, or None for a directory without one (vsg.collect writes it)."""
    path = pathlib.Path(directory) / DATASET_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # JSON and UTF-8 decoding errors are ValueErrors
        raise EpisodeError(f'unreadable {path}: {type(error).__name__}: {error}') from None
    if not isinstance(info, dict):
        raise EpisodeError(f'unreadable {path}: it holds a JSON {type(info).__name__}, not an object')
    return info


def write_info(directory, info):
    directory = pathlib.Path(directory)
    files.write_json(directory / DATASET_FILE, info)
    files.sync_directory(directory)
