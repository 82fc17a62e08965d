"""Frames for the slot model: every episode of a replay-format directory (vsg.collect's --outdir, a
run's replay/) with its frames (the uint8 [H, W, 3] key) and, when all have one, its `segmentation` ids; a seeded
hold-out of a few episodes; random windows of consecutive frames from the others. Numpy only.
"""
import dataclasses
import pathlib

import numpy as np

from common import episodes as episodes_lib
from common import video

FRAMES, SEGMENTATION = 'frames', 'segmentation'  # what Frames.windows reads: the video or its object ids


class DataError(ValueError):
    """One line saying what is wrong with the data."""


@dataclasses.dataclass
class Frames:
    """All usable episodes' frames as one array over steps, where each episode starts and ends."""
    names: list              # episode file names, oldest first
    frames: np.ndarray       # uint8 [steps, H, W, 3]
    segmentation: object     # uint8 [steps, H, W] object ids (0: background), or None
    starts: np.ndarray
    ends: np.ndarray

    @property
    def num_episodes(self):
        return len(self.starts)

    def window_starts(self, episodes, window):
        """The first steps of every window of `window` frames inside one of `episodes`."""
        return np.concatenate([np.arange(self.starts[e], self.ends[e] - window + 1) for e in episodes])

    def windows(self, starts, window, key=FRAMES):
        """[len(starts), window, ...] of the frames (or segmentation ids) from each start."""
        source = self.frames if key == FRAMES else self.segmentation
        return source[np.asarray(starts)[:, None] + np.arange(window)]


def load(directory, window, resolution):
    """The episodes of `directory` long enough for a window. A missing or empty directory, a corrupt
    file, an episode without frames of resolution x resolution x 3, or fewer than two episodes of
    `window` steps is a DataError (one line); nothing in the directory is written."""
    directory = pathlib.Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f'data directory {directory} does not exist (give a directory of episode .npz files, '
                        'e.g. one written by vsg.collect)')
    paths = episodes_lib.paths(directory)
    if not paths:
        raise DataError(f'data directory {directory} holds no episode .npz files')
    names, frames, segmentation, short = [], [], [], []
    for path in paths:
        try:  # A corrupt file stops the run: skipping it would move the seeded hold-out to other episodes.
            episode = episodes_lib.read(path, required=())
        except episodes_lib.EpisodeError as e:
            raise DataError(str(e).splitlines()[0]) from None
        key = video.episode_frames_key(episode)
        if key is None:
            raise DataError(f"episode {path} has no frames (a uint8 [H, W, C] key; it has {', '.join(sorted(episode))}); "
                            'collect with --env.<suite>.obs pixels or both')
        image = episode[key]
        if image.shape[1:] != (resolution, resolution, 3):
            raise DataError(f"episode {path}: its frames '{key}' are {image.shape[1:]}, the slot model takes uint8 "
                            f'({resolution}, {resolution}, 3) frames (slots.resolution)')
        if len(image) < window:
            short.append(path.name)
            continue
        names.append(path.name)
        frames.append(image)
        segmentation.append(episode.get(SEGMENTATION))
    if len(names) < 2:
        raise DataError(f'data directory {directory} holds {len(names)} episodes of at least slots.window={window} '
                        f'steps ({len(short)} shorter ones); the slot model needs two, one to hold out')
    if short:
        print(f'slots: left out {len(short)} episodes shorter than slots.window={window} steps', flush=True)
    lengths = np.array([len(image) for image in frames])
    has_ids = all(ids is not None and ids.shape == image.shape[:3] for ids, image in zip(segmentation, frames))
    return Frames(names, np.concatenate(frames), np.concatenate(segmentation) if has_ids else None,
                  np.concatenate([[0], np.cumsum(lengths)[:-1]]), np.cumsum(lengths))


def split(count, held_out, seed):
    """(training, held-out) episode indices, each sorted: a seeded choice of `held_out` episodes (at
    most count - 1) that depends only on the seed and the episode count."""
    order = np.random.default_rng(seed).permutation(count)
    held_out = min(held_out, count - 1)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def eval_starts(data, episodes, window, count):
    """`count` window starts spread evenly over the held-out `episodes` (the same ones every time)."""
    starts = data.window_starts(episodes, window)
    return starts[np.unique(np.linspace(0, len(starts) - 1, count).round().astype(int))]


def sampler(data, episodes, window, batch_size, rng):
    """An endless iterator of (frames [batch_size, window, H, W, 3],): windows drawn uniformly from
    every window of the training `episodes`."""
    starts = data.window_starts(episodes, window)
    while True:
        yield (data.windows(rng.choice(starts, batch_size), window),)
