"""Episode replay: npz files on disk, episodes in memory, sequence sampling for training.

Episodes and their files are common.episodes's format: each finished episode is written to
`{timestamp}-{uuid}-{length}.npz`, so any replay directory is also an offline dataset.
"""

import atexit
import pathlib
import threading
import time
import warnings
import weakref

import numpy as np

from common import episodes as episodes_lib


class Replay:
    """Episodes on disk plus the newest `capacity` steps of them in memory, for sampling."""

    def __init__(self, directory, capacity=None, seed=0, prioritize_ends=False, select=None):
        """prioritize_ends: a start drawn within an episode's last `length` steps is moved back so the
        sequence ends with the episode (DreamerV2's option): rare episode ends, such as scoring the last
        object, are then seen `length` times as often. select: `select(path) -> bool` loads only some of
        the directory's episodes (a read-only view, e.g. vsg.diagnose on the episodes a run seeded).
        directory None: episodes are kept in memory only (a worker that is not the chief writes nothing)."""
        self._directory = None if directory is None else pathlib.Path(directory)
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
        self._capacity = capacity
        self._prioritize_ends = prioritize_ends
        self._rng = np.random.default_rng(seed)
        # sample() runs in the tf.data thread while the driver adds episodes in the main thread.
        # Episodes live in an immutable tuple that is swapped whole, so the lock only guards the swap.
        self._lock = threading.Lock()
        self._episodes = ()
        self._lengths = np.zeros(0, np.int64)
        self._ends = np.zeros(0, np.int64)  # cumulative lengths, to map a global step to its episode
        self._spec = None  # {key: (dtype, per-step shape)}, fixed by the first episode
        self._ongoing = {}  # worker -> list of transitions of its unfinished episode
        self._known = set()  # names of the directory's episode files already loaded, added or passed over
        self._load(select)

    @property
    def num_episodes(self):
        with self._lock:
            return len(self._episodes)

    @property
    def num_steps(self):
        with self._lock:
            return int(self._lengths.sum())

    def stats(self):
        return {'episodes': self.num_episodes, 'steps': self.num_steps}

    def add_step(self, transition, worker=0):
        """Accumulate one step for `worker`; save and return the episode's path on `is_last`."""
        # Copy, because envs may reuse their observation buffers between steps.
        step = {key: np.array(value) for key, value in transition.items()}
        if step['is_first']:
            self._ongoing[worker] = []  # a new episode drops any unfinished one of this worker
        steps = self._ongoing.setdefault(worker, [])
        steps.append(step)
        if not step['is_last']:
            return None
        del self._ongoing[worker]
        episode = {key: np.stack([step[key] for step in steps]) for key in steps[0]}
        return self.add_episode(episode)

    def add_episode(self, episode):
        """Validate (the format's checks, and the keys/dtypes/shapes of the replay's episodes), save
        atomically (returning the path; None in memory only), and add to memory, evicting the oldest
        beyond capacity.

        The arrays are kept as given, not copied: do not modify them afterwards.
        """
        episode = {key: np.asarray(value) for key, value in episode.items()}
        spec = episodes_lib.spec(episode)
        if self._spec is not None and spec != self._spec:
            raise ValueError(f"Episode keys/dtypes/shapes {spec} do not match the replay's {self._spec}.")
        path = None if self._directory is None else episodes_lib.write(self._directory, episode)
        if path is not None:
            self._known.add(path.name)
        self._append(episode, spec)
        return path

    def refresh(self):
        """Adds the episode files that other processes (e.g. collectors on other machines) wrote into the
        directory since; returns how many. Writers rename a finished file into place, so a file being
        written is never listed; one that vanished or cannot be read is passed over with a warning."""
        if self._directory is None:
            return 0
        added = 0
        for path in episodes_lib.paths(self._directory):
            if path.name in self._known:
                continue
            self._known.add(path.name)
            episode = self._read(path)
            if episode is not None:
                self._append(episode, episodes_lib.spec(episode))
                added += 1
        return added

    def _read(self, path):
        """The episode of file `path`, or None with a warning if it is unreadable or unlike the replay's."""
        episode = episodes_lib.read_or_skip(path)
        if episode is None:
            return None
        spec = episodes_lib.spec(episode)
        if self._spec is not None and spec != self._spec:
            warnings.warn(f'Skipping episode {path}: its keys/dtypes/shapes {spec} differ from {self._spec}.')
            return None
        return episode

    def _append(self, episode, spec):
        """Adds `episode` to memory, evicting the oldest beyond capacity."""
        with self._lock:
            self._spec = spec
            lengths = np.append(self._lengths, episodes_lib.length(episode))
            total, dropped = lengths.sum(), 0
            # Never evict the newest episode, so a tiny capacity still leaves something to sample.
            while self._capacity is not None and total > self._capacity and dropped < len(lengths) - 1:
                total -= lengths[dropped]
                dropped += 1
            self._set_episodes((self._episodes + (episode,))[dropped:], lengths[dropped:])

    def sample(self, batch, length):
        """Return {key: array [batch, length, ...]} of sequences with uniformly drawn start steps
        (moved back from an episode's end under prioritize_ends).

        A sequence that runs past its episode's end continues into the chronologically next
        episode (the last wraps to the first); `is_first` marks where the model must reset.
        """
        if batch < 1 or length < 1:
            raise ValueError(f'batch and length must be >= 1, got batch={batch}, length={length}.')
        with self._lock:
            episodes, lengths, ends, spec = self._episodes, self._lengths, self._ends, self._spec
        if not episodes:
            raise ValueError(f'Cannot sample: the replay at {self._directory} holds no episodes.')
        # Uniform over all stored steps = episodes weighted by length, start uniform inside.
        starts = self._rng.integers(0, ends[-1], size=batch)
        indices = np.searchsorted(ends, starts, side='right')
        offsets = starts - (ends - lengths)[indices]
        if self._prioritize_ends:  # Episodes shorter than `length` still run on into the next one.
            offsets = np.maximum(np.minimum(offsets, lengths[indices] - length), 0)
        sequences = {key: np.empty((batch, length, *shape), dtype) for key, (dtype, shape) in spec.items()}
        for row, (index, offset) in enumerate(zip(indices, offsets)):
            filled = 0
            while filled < length:
                size = min(lengths[index] - offset, length - filled)
                for key, array in sequences.items():
                    array[row, filled:filled + size] = episodes[index][key][offset:offset + size]
                filled += size
                index, offset = (index + 1) % len(episodes), 0
        return sequences

    def dataset(self, batch, length, prefetch=2):
        """An infinite tf.data.Dataset of sample(batch, length), prefetched in a background thread."""
        # Imported here so tools that only read or write episodes never load TensorFlow
        # (env workers must not: TF and MuJoCo rendering cannot share a process).
        import tensorflow as tf

        with self._lock:
            spec = self._spec
        if spec is None:
            raise ValueError(f'Cannot build a dataset: the replay at {self._directory} holds no episodes.')
        signature = {
            key: tf.TensorSpec((batch, length, *shape), tf.as_dtype(dtype))
            for key, (dtype, shape) in spec.items()}
        samples = _ExitSafeSamples(lambda: self.sample(batch, length))
        dataset = tf.data.Dataset.from_generator(samples, output_signature=signature)
        return dataset.prefetch(prefetch)

    def _set_episodes(self, episodes, lengths):
        self._episodes = tuple(episodes)
        self._lengths = np.asarray(lengths, np.int64)
        self._ends = np.cumsum(self._lengths)

    def _load(self, select):
        if self._directory is None:
            return
        newest_first = []
        total = 0
        paths = episodes_lib.paths(self._directory)
        self._known.update(path.name for path in paths)  # those passed over here, refresh() passes over too
        for path in reversed(paths):
            if select is not None and not select(path):
                continue
            episode = self._read(path)
            if episode is None:
                continue
            spec = episodes_lib.spec(episode)
            # Same rule as eviction: keep the newest episodes that fit, and always the newest one.
            size = episodes_lib.length(episode)
            if self._capacity is not None and newest_first and total + size > self._capacity:
                break
            self._spec = spec
            newest_first.append(episode)
            total += size
        oldest_first = newest_first[::-1]
        self._set_episodes(oldest_first, [episodes_lib.length(episode) for episode in oldest_first])


# Weak, so that a dropped dataset does not keep its replay's episodes alive until exit.
_live_sample_streams = weakref.WeakSet()


@atexit.register
def _stop_sample_streams():
    for stream in list(_live_sample_streams):
        stream.stop()


class _ExitSafeSamples:
    """Infinite generator of samples for tf.data that steps aside when the interpreter exits.

    tf.data calls the generator from its own thread. An iterator still alive at exit (a module
    global, or one held by the traceback of a crash) is destroyed during interpreter
    finalization; if its thread is then inside or about to enter the generator, it waits for
    the GIL forever and the process hangs instead of exiting (seen with TF 2.21 and Python 3.11
    in most such runs). So at exit the generator is stopped and the exit waits until tf.data
    has left Python.
    """

    def __init__(self, sample, quiet_seconds=0.05, timeout_seconds=2.0):
        self._sample = sample
        self._quiet_seconds = quiet_seconds
        self._timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._stopped = False
        self._running = False
        self._last_activity = time.monotonic()
        _live_sample_streams.add(self)

    def __call__(self):
        while self._enter():
            try:
                batch = self._sample()
            finally:
                self._leave()
            yield batch

    def _enter(self):
        with self._lock:
            self._running = not self._stopped
            self._last_activity = time.monotonic()
            return self._running

    def _leave(self):
        with self._lock:
            self._running = False
            self._last_activity = time.monotonic()

    def stop(self):
        with self._lock:
            self._stopped = True
            self._last_activity = time.monotonic()
        # tf.data may still be inside a call or waiting for the GIL to make one (which now
        # returns at once, ending the stream); the sleeps hand it the GIL. Once it has been
        # quiet for a moment, its thread is parked in C++ and finalization is safe.
        deadline = time.monotonic() + self._timeout_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running and time.monotonic() - self._last_activity > self._quiet_seconds:
                    return
            time.sleep(self._quiet_seconds / 10)
