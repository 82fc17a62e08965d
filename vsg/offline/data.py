"""Offline data: episodes of a replay-format directory, the representation a model reads, the
train/held-out split by episodes, and the (o_t, o_{t+k}) windows of LAPO.

A representation maps an episode's (or a batch of live observations') arrays to the model's input
per step. `image` ones are uint8 [H, W, C] read by conv nets; `vector` ones are float [F] read by MLPs.
A representation finds its keys in the data by their shapes (frames, state vectors), never by name;
the slot representations read the keys a slot model adds to the episodes and to live observations
(SLOTS, MASKS: vsg/offline/objects.py), `slots` keeping the chosen ones.
"""
import dataclasses
import pathlib

import numpy as np

from common import episodes as episodes_lib
from common import video


class DataError(ValueError):
    """One line saying what is wrong with the data."""


# What a slot model adds per step: its slots [K, D]; the union of the chosen slots' masks [H, W], uint8 (255: all).
SLOTS, MASKS = 'slots', 'slot_masks'


@dataclasses.dataclass(frozen=True)
class Representation:
    name: str
    kind: str            # 'image' or 'vector'
    keys: tuple          # the episode keys it reads, found in the data
    chosen: tuple = ()   # the slots a slot representation keeps

    def convert(self, data):
        """{key: array [..., per step]} (an episode, or a batch of live observations) -> [..., *shape]."""
        return REPRESENTATIONS[self.name][2](data, self.keys, self.chosen)


def frame_keys(example):
    """[the first uint8 [H, W, C] per-step key], what an episode's video shows; [] without one."""
    key = video.episode_frames_key(example)
    return [] if key is None else [key]


def _state(example):
    """Every float vector per step besides the action: the suite's state keys, sorted."""
    return sorted(key for key, value in example.items()
                  if value.ndim == 2 and key != 'action' and np.issubdtype(value.dtype, np.floating))


def _slot_keys(example):
    return [SLOTS] if SLOTS in example else []


def _masked_frame_keys(example):
    frames = frame_keys(example)
    return [*frames, MASKS] if frames and MASKS in example else []


def _first(data, keys, chosen):
    return data[keys[0]]


def _concatenated(data, keys, chosen):
    return np.concatenate([np.asarray(data[key], np.float32) for key in keys], -1)


def _chosen_slots(data, keys, chosen):
    """The chosen slots' vectors [..., K, D] -> [..., len(chosen) * D], in the chosen order."""
    slots = np.asarray(data[keys[0]], np.float32)[..., list(chosen), :]
    return slots.reshape(*slots.shape[:-2], -1)


def _masked(data, keys, chosen):
    """The frame times the union of the chosen slots' masks: black outside the chosen objects."""
    frames, union = np.asarray(data[keys[0]]), np.asarray(data[keys[1]], np.float32) / 255
    return np.round(frames * union[..., None]).astype(np.uint8)


# name -> (kind, the keys it reads from an example episode, convert(data, keys, chosen slots)); a new
# representation registers here under a name for `offline.repr`.
REPRESENTATIONS = {'pixels': ('image', frame_keys, _first), 'state': ('vector', _state, _concatenated),
                   'slots': ('vector', _slot_keys, _chosen_slots), 'masks': ('image', _masked_frame_keys, _masked)}
SLOT_REPRESENTATIONS = ('slots', 'masks')  # need a slot model (offline.slots)


def check_representation(name):
    if name not in REPRESENTATIONS:
        raise DataError(f"unknown representation {name!r}; known: {', '.join(REPRESENTATIONS)}")


def policy_representation(repr_name, bc_repr):
    """What the cloned policies read: `bc_repr` (offline.bc.repr) if set, else `repr_name`, except that a
    slot representation's policies read the frames (the slots choose what the latent action explains;
    the policy still needs the whole scene, and BC on the true actions stays one yardstick for all)."""
    if bc_repr:
        return bc_repr
    return 'pixels' if repr_name in SLOT_REPRESENTATIONS else repr_name


def representation(name, example, chosen=()):
    """`name`'s representation of episodes like `example` (per-step arrays [L, ...]); `chosen`: the
    slots a slot representation keeps."""
    check_representation(name)
    kind, pick, _ = REPRESENTATIONS[name]
    keys = tuple(pick(example))
    if not keys:
        held = ', '.join(f'{key} {value.shape[1:]}' for key, value in example.items())
        raise DataError(f'the data holds no {kind} observations for representation {name!r} (it holds {held}); '
                        f"collect with --env.<suite>.obs {'pixels' if kind == 'image' else 'state'} or both")
    return Representation(name, kind, keys, tuple(chosen))


def load_episodes(directory, keys):
    """(episodes, file names) of `directory`, oldest first; each episode must hold `keys` (only those:
    action-free videos train the latent action model). Unreadable files are skipped with a warning,
    as the replay does."""
    directory = pathlib.Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f'data directory {directory} does not exist (give a directory of episode .npz files, '
                        'e.g. one written by vsg.collect)')
    episodes, names = [], []
    for path in episodes_lib.paths(directory):
        episode = episodes_lib.read_or_skip(path, required=())
        if episode is None:
            continue
        try:
            episodes_lib.check(episode, keys, f'episode {path}')
        except episodes_lib.EpisodeError as e:  # other data than the stage needs, not a damaged file
            raise DataError(str(e)) from None
        episodes.append(episode)
        names.append(path.name)
    if not episodes:
        raise DataError(f'data directory {directory} holds no episode .npz files')
    return episodes, names


def split(count, test_fraction, seed):
    """(train, test) episode indices: a seeded shuffle, the last `test_fraction` (at least one) held out."""
    if count < 2:
        raise DataError(f'need at least 2 episodes (one is held out for the probe), found {count}')
    order = np.random.default_rng(seed).permutation(count)
    tests = min(count - 1, max(1, round(test_fraction * count)))
    return order[:count - tests], order[count - tests:]


def is_one_hot(actions):
    """Whether action rows are one-hot (a discrete action space); all-zero rows (the first step's
    placeholder) are ignored."""
    rows = actions[np.abs(actions).sum(-1) > 0]
    return bool(len(rows)) and bool(np.all((rows == 0) | (rows == 1)) and np.all(rows.sum(-1) == 1))


class Dataset:
    """All episodes' representation, actions and returns as flat arrays over steps.

    A step `g` indexes the concatenation of the episodes; `action[g + 1]` is the action taken at
    step g (the replay stores with each obs the action that led to it), so the transition g -> g+1
    exists for the steps that are not their episode's last."""

    def __init__(self, episodes, names, repr_name, frame_stack=1, chosen=()):
        self.repr = representation(repr_name, episodes[0], chosen)
        for name, episode in zip(names, episodes):
            try:
                episodes_lib.check(episode, self.repr.keys, f'episode {name}')
            except episodes_lib.EpisodeError as e:  # episodes of another env than the first one's
                raise DataError(str(e)) from None
        self.names = names
        self.frame_stack = frame_stack
        self.inputs = np.concatenate([np.asarray(self.repr.convert(ep)) for ep in episodes])
        lengths = np.array([len(ep['is_first']) if 'is_first' in ep else len(self.repr.convert(ep)) for ep in episodes])
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.ends = self.starts + lengths
        self.episode = np.repeat(np.arange(len(episodes)), lengths)
        self.actions = np.concatenate([ep['action'] for ep in episodes]).astype(np.float32) if 'action' in episodes[0] else None
        self.returns = np.array([float(ep['reward'].sum()) for ep in episodes]) if 'reward' in episodes[0] else None
        self.discrete = self.actions is not None and is_one_hot(self.actions)
        if self.repr.kind == 'image' and self.inputs.shape[1:3] != (64, 64):
            raise DataError(f'the {repr_name} representation needs 64x64 images (the conv nets), '
                            f'the episodes hold {self.inputs.shape[1]}x{self.inputs.shape[2]}')

    @property
    def num_episodes(self):
        return len(self.starts)

    @property
    def step_shape(self):
        """The model's input per step: frame_stack steps concatenated along the last axis."""
        shape = self.inputs.shape[1:]
        return (*shape[:-1], shape[-1] * self.frame_stack)

    def transitions(self, episodes, offset=1):
        """Steps g of `episodes` with g + offset inside the same episode."""
        steps = [np.arange(self.starts[e], self.ends[e] - offset) for e in episodes]
        return np.concatenate(steps) if steps else np.zeros(0, np.int64)

    def stacked(self, steps):
        """The inputs of `steps` with their frame_stack - 1 predecessors (oldest first, the episode's
        first step repeated before its start), concatenated along the last axis."""
        first = self.starts[self.episode[steps]]
        frames = [self.inputs[np.maximum(steps - back, first)] for back in range(self.frame_stack - 1, -1, -1)]
        return np.concatenate(frames, -1)

    def future(self, steps, offsets):
        """The input `offsets` steps after each of `steps`, not beyond its episode's last."""
        return self.inputs[np.minimum(steps + offsets, self.ends[self.episode[steps]] - 1)]

    def next_actions(self, steps):
        return self.actions[steps + 1]


def offsets_for(count, offset, sampled, rng):
    """k for each of `count` windows: `offset`, or uniform in 1..offset when `sampled`."""
    if sampled:
        return rng.integers(1, offset + 1, count)
    return np.full(count, offset)


def label_offset(offset, sampled):
    """The k with which the IDM labels a step: the fixed offset, or 1 when it was sampled."""
    return 1 if sampled else offset


def dataset_info(directory):
    """DIR/dataset.json, vsg.collect's record of the task, env settings and policy, or None."""
    try:
        return episodes_lib.read_info(directory)
    except episodes_lib.EpisodeError as e:
        raise DataError(str(e)) from None


def recorded_env(directory):
    """The task and flat env settings recorded by vsg.collect, or None."""
    info = dataset_info(directory)
    if info is None:
        return None
    return {'task': info['task'], **info['env']}
