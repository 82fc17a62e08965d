import pathlib
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from common.replay import Replay

FILENAME = re.compile(r'^\d{8}T\d{6}\.\d{6}-[0-9a-f]{32}-(\d+)\.npz$')


def make_episode(episode_id, length, size=8):
    """An episode whose every value encodes (episode_id, t), so samples can be traced back exactly."""
    t = np.arange(length)
    return {
        'image': np.broadcast_to(((16 * episode_id + t) % 256).astype(np.uint8)[:, None, None, None],
                                 (length, size, size, 3)).copy(),
        'reward': (1000 * episode_id + t).astype(np.float32),
        'is_first': t == 0,
        'is_last': t == length - 1,
        'is_terminal': np.zeros(length, bool),
        'action': np.stack([np.full(length, episode_id), t], -1).astype(np.float32),
        'state': np.stack([np.full(length, episode_id), t], -1).astype(np.int32),  # an extra key
    }


def steps_of(episode):
    length = len(episode['reward'])
    return [{key: value[t] for key, value in episode.items()} for t in range(length)]


def assert_same_episodes(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype
            np.testing.assert_array_equal(got[key], want[key])


def npz_files(directory):
    return sorted(directory.glob('*.npz'))


def test_save_load_round_trip(tmp_path):
    replay = Replay(tmp_path)
    episodes = [make_episode(i, length) for i, length in enumerate([3, 7, 1, 5])]
    paths = [replay.add_episode(episode) for episode in episodes]
    assert npz_files(tmp_path) == paths  # names sort chronologically
    for path, episode in zip(paths, episodes):
        match = FILENAME.match(path.name)
        assert match and int(match.group(1)) == len(episode['reward'])
    assert (replay.num_episodes, replay.num_steps) == (4, 16)
    assert replay.stats() == {'episodes': 4, 'steps': 16}
    assert_same_episodes(Replay(tmp_path)._episodes, episodes)


def test_select_loads_only_the_chosen_episodes_and_leaves_the_directory_alone(tmp_path):
    replay = Replay(tmp_path)
    paths = [replay.add_episode(make_episode(i, 4)) for i in range(3)]
    chosen = {paths[0].name, paths[2].name}
    view = Replay(tmp_path, select=lambda path: path.name in chosen)
    assert_same_episodes(view._episodes, [make_episode(0, 4), make_episode(2, 4)])
    assert npz_files(tmp_path) == paths


def test_no_temp_files_and_corrupt_files_are_skipped(tmp_path):
    replay = Replay(tmp_path)
    good = [make_episode(i, 4) for i in range(2)]
    paths = [replay.add_episode(episode) for episode in good]
    assert sorted(tmp_path.iterdir()) == paths
    # A truncated copy of a real episode and a file that is not a zip at all, named to sort
    # among the real ones, plus a temp file left by a killed write.
    (tmp_path / (paths[0].stem + 'a.npz')).write_bytes(paths[0].read_bytes()[:100])
    (tmp_path / 'garbage.npz').write_bytes(b'not an npz')
    (tmp_path / f'.{paths[1].name}.tmp').write_bytes(paths[1].read_bytes()[:50])
    with pytest.warns(UserWarning, match='Skipping unreadable episode') as record:
        loaded = Replay(tmp_path)
    assert len(record) == 2
    assert_same_episodes(loaded._episodes, good)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    replay = Replay(tmp_path)

    def crash(file, **arrays):
        file.write(b'partial')
        raise KeyboardInterrupt

    monkeypatch.setattr(np, 'savez_compressed', crash)
    with pytest.raises(KeyboardInterrupt):
        replay.add_episode(make_episode(0, 3))
    assert list(tmp_path.iterdir()) == []
    assert replay.num_episodes == 0


def test_invalid_episodes_are_rejected(tmp_path):
    replay = Replay(tmp_path)
    episode = make_episode(0, 3)
    with pytest.raises(ValueError, match='leading length'):
        replay.add_episode({**episode, 'reward': np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match='leading length'):
        replay.add_episode({key: value[:0] for key, value in episode.items()})
    replay.add_episode(episode)
    with pytest.raises(ValueError, match='do not match'):
        replay.add_episode({**make_episode(1, 3), 'reward': np.zeros(3, np.float64)})
    assert len(npz_files(tmp_path)) == 1


def test_capacity_evicts_oldest_from_memory_only(tmp_path):
    replay = Replay(tmp_path, capacity=10)
    episodes = [make_episode(i, 4) for i in range(4)]
    for episode in episodes:
        replay.add_episode(episode)
    assert (replay.num_episodes, replay.num_steps) == (2, 8)
    assert_same_episodes(replay._episodes, episodes[2:])
    assert len(npz_files(tmp_path)) == 4
    # The newest episode stays even when it alone exceeds the capacity.
    replay.add_episode(make_episode(4, 12))
    assert (replay.num_episodes, replay.num_steps) == (1, 12)

    assert_same_episodes(Replay(tmp_path, capacity=19)._episodes, [episodes[3], make_episode(4, 12)])
    assert_same_episodes(Replay(tmp_path, capacity=5)._episodes, [make_episode(4, 12)])
    assert Replay(tmp_path).num_episodes == 5


def test_add_step_saves_each_worker_on_is_last(tmp_path):
    replay = Replay(tmp_path)
    first, second = make_episode(0, 3), make_episode(1, 5)
    abandoned = make_episode(2, 4)
    # Worker 1 starts an episode, abandons it and starts again: the partial one is dropped.
    streams = {0: steps_of(first), 1: steps_of(abandoned)[:2] + steps_of(second)}
    saved = []
    for t in range(max(map(len, streams.values()))):
        for worker, steps in streams.items():
            if t < len(steps):
                path = replay.add_step(steps[t], worker=worker)
                assert (path is not None) == bool(steps[t]['is_last'])
                saved += [path] if path else []
                assert npz_files(tmp_path) == saved
    assert len(saved) == 2
    assert_same_episodes(replay._episodes, [first, second])
    assert_same_episodes(Replay(tmp_path)._episodes, [first, second])


def test_sample_shapes_and_dtypes(tmp_path):
    replay = Replay(tmp_path)
    episode = make_episode(0, 20)
    replay.add_episode(episode)
    batch = replay.sample(3, 6)
    assert batch.keys() == episode.keys()
    for key, value in episode.items():
        assert batch[key].dtype == value.dtype
        assert batch[key].shape == (3, 6, *value.shape[1:])


@pytest.mark.parametrize('lengths', [[3, 5, 1, 4], [2]])
def test_sequences_continue_into_next_episode(tmp_path, lengths):
    replay = Replay(tmp_path)
    episodes = [make_episode(i, length) for i, length in enumerate(lengths)]
    for episode in episodes:
        replay.add_episode(episode)
    batch = replay.sample(64, 11)  # longer than every episode, so every row crosses boundaries
    for row in range(64):
        episode_id, t = batch['state'][row, 0]
        for step in range(11):
            # Walk the stored episodes chronologically, wrapping from the last to the first.
            for key, value in episodes[episode_id].items():
                np.testing.assert_array_equal(batch[key][row, step], value[t])
            assert batch['is_first'][row, step] == (t == 0)
            t += 1
            if t == lengths[episode_id]:
                episode_id, t = (episode_id + 1) % len(lengths), 0


def test_start_steps_are_uniform_over_all_steps(tmp_path):
    replay = Replay(tmp_path, seed=1)
    lengths = [2, 10, 30, 8]
    for i, length in enumerate(lengths):
        replay.add_episode(make_episode(i, length))
    starts = replay.sample(20000, 1)['state'][:, 0]
    global_steps = np.cumsum([0, *lengths])[starts[:, 0]] + starts[:, 1]
    counts = np.bincount(global_steps, minlength=sum(lengths))
    expected = 20000 / sum(lengths)  # 400 per step; one standard deviation is about 20
    assert np.all(np.abs(counts - expected) < 0.25 * expected), counts


def test_prioritized_ends_move_late_starts_back_to_the_episode_end(tmp_path):
    replay = Replay(tmp_path, seed=2, prioritize_ends=True)
    lengths, length = [20, 40, 3], 5
    for i, episode_length in enumerate(lengths):
        replay.add_episode(make_episode(i, episode_length))
    state = replay.sample(30000, length)['state']
    episode, start = state[:, 0, 0], state[:, 0, 1]
    long = episode < 2
    # A sequence starting in a long episode stays inside it, so it never crosses an episode boundary.
    assert np.all(state[long, :, 0] == episode[long, None])
    assert np.all(start[long] <= np.array(lengths)[episode[long]] - length)
    # Starts are uniform over the episode's steps, then clipped: the last start takes `length` of
    # the L draws of its episode (5/20 and 5/40) where plain sampling would give it 1/L.
    for i in (0, 1):
        at_end = np.mean(start[episode == i] == lengths[i] - length)
        assert abs(at_end - length / lengths[i]) < 0.03, (i, at_end)
        inside = np.mean(start[episode == i] == 0)
        assert abs(inside - 1 / lengths[i]) < 0.02, (i, inside)
    # The 3-step episode is shorter than a sequence: it starts at 0 and runs on into the next episode.
    short = episode == 2
    assert np.all(start[short] == 0) and np.all(state[short, 3, 0] == 0)


def test_sampling_is_reproducible_under_a_seed(tmp_path):
    writer = Replay(tmp_path)
    for i in range(3):
        writer.add_episode(make_episode(i, 5 + i))
    first, second, other = Replay(tmp_path, seed=3), Replay(tmp_path, seed=3), Replay(tmp_path, seed=4)
    for _ in range(2):
        a, b, c = first.sample(8, 4), second.sample(8, 4), other.sample(8, 4)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a['reward'], c['reward'])


def test_sample_empty_raises(tmp_path):
    with pytest.raises(ValueError, match='no episodes'):
        Replay(tmp_path).sample(2, 3)


def test_sample_while_adding_from_another_thread(tmp_path):
    replay = Replay(tmp_path, capacity=12)
    replay.add_episode(make_episode(0, 3))
    errors, done = [], threading.Event()

    def sample_forever():
        try:
            while not done.is_set():
                batch = replay.sample(4, 7)
                assert batch['reward'].shape == (4, 7)
        except Exception as error:  # surfaced to the main thread below
            errors.append(error)

    thread = threading.Thread(target=sample_forever)
    thread.start()
    for i in range(1, 15):
        replay.add_episode(make_episode(i, 1 + i % 5))
    done.set()
    thread.join()
    assert errors == []


def test_dataset_yields_batches(tmp_path):
    tf = pytest.importorskip('tensorflow')
    replay = Replay(tmp_path)
    episode = make_episode(0, 6)
    replay.add_episode(episode)
    for batch in replay.dataset(batch=2, length=4).take(2):
        assert batch.keys() == episode.keys()
        for key, value in episode.items():
            assert batch[key].dtype == tf.as_dtype(value.dtype)
            assert tuple(batch[key].shape) == (2, 4, *value.shape[1:])


EXIT_WITH_LIVE_ITERATOR = '''
import sys
from common.replay import Replay
from tests.test_replay import make_episode

replay = Replay(sys.argv[1])
replay.add_episode(make_episode(0, 100, size=64))
batches = iter(replay.dataset(batch=16, length=50))  # still alive, and sampling, at exit
for _ in range(20):
    next(batches)
print('finished')
'''


def test_process_with_live_dataset_iterator_exits(tmp_path):
    # Without the exit guard the interpreter hangs in finalization in most runs.
    pytest.importorskip('tensorflow')
    result = subprocess.run(
        [sys.executable, '-c', EXIT_WITH_LIVE_ITERATOR, str(tmp_path)],
        cwd=pathlib.Path(__file__).parent.parent, capture_output=True, timeout=120)
    assert result.returncode == 0 and result.stdout == b'finished\n', result.stderr.decode()[-2000:]
