"""common.episodes, the episode file format: atomic writes, checked reads with one-line errors,
listing and counting, copying, dataset.json; and that it (with the driver) stays free of TensorFlow."""
import json

import numpy as np
import pytest

from common import episodes
from tests.fresh_python import run_fresh


def make_episode(length=4):
    """Every dtype an env or the driver produces, plus a few more."""
    t = np.arange(length)
    return {
        'image': np.full((length, 8, 8, 3), t[:, None, None, None], np.uint8),
        'position': np.stack([t, -t], -1).astype(np.float64),
        'count': t.astype(np.int64),
        'small': t.astype(np.float16),
        'reward': t.astype(np.float32),
        'is_first': t == 0,
        'is_last': t == length - 1,
        'is_terminal': np.zeros(length, bool),
        'action': np.eye(3, dtype=np.float32)[t % 3],
    }


def assert_same(actual, expected):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype, key
        np.testing.assert_array_equal(actual[key], value)


def one_line_error(path, required=episodes.REQUIRED):
    with pytest.raises(episodes.EpisodeError) as caught:
        episodes.read(path, required)
    message = str(caught.value)
    assert '\n' not in message and str(path) in message
    return message


def test_write_read_round_trip_keeps_every_dtype_and_names_the_length(tmp_path):
    episode = make_episode(5)
    path = episodes.write(tmp_path, episode)
    assert path.parent == tmp_path and path.name.endswith('-5.npz')
    assert episodes.paths(tmp_path) == [path]
    assert_same(episodes.read(path), episode)
    assert episodes.read(path, only=('reward',)).keys() == {'reward'}


def test_names_sort_chronologically(tmp_path):
    paths = [episodes.write(tmp_path, make_episode(length)) for length in (3, 1, 2)]
    assert episodes.paths(tmp_path) == paths


def test_a_failed_write_leaves_no_episode_and_a_leftover_temp_file_is_not_listed(tmp_path, monkeypatch):
    def crash(file, **arrays):
        file.write(b'partial')
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(np, 'savez_compressed', crash)
        with pytest.raises(KeyboardInterrupt):
            episodes.write(tmp_path, make_episode())
    assert list(tmp_path.iterdir()) == []
    # A kill (no cleanup) leaves the hidden temp file: never an episode.
    path = episodes.write(tmp_path, make_episode())
    (tmp_path / f'.{path.name}.tmp').write_bytes(path.read_bytes()[:50])
    assert episodes.paths(tmp_path) == [path] and episodes.count(tmp_path) == 1


def test_invalid_episodes_are_not_written(tmp_path):
    episode = make_episode(3)
    with pytest.raises(episodes.EpisodeError, match='leading length'):
        episodes.write(tmp_path, {**episode, 'reward': np.zeros(2, np.float32)})
    with pytest.raises(episodes.EpisodeError, match="lacks 'is_terminal'"):
        episodes.write(tmp_path, {key: value for key, value in episode.items() if key != 'is_terminal'})
    with pytest.raises(episodes.EpisodeError, match='Python objects'):
        episodes.write(tmp_path, {**episode, 'note': np.array([None] * 3)})
    assert list(tmp_path.iterdir()) == []


def test_truncated_and_corrupt_files_are_one_line_errors(tmp_path):
    path = episodes.write(tmp_path, make_episode())
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(path.read_bytes()[:100])
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'not an npz')
    for bad in (truncated, garbage, tmp_path / 'missing.npz'):
        assert one_line_error(bad).startswith(f'unreadable episode {bad}: ')
    with pytest.warns(UserWarning, match='Skipping unreadable episode'):
        assert episodes.read_or_skip(garbage) is None


def test_a_missing_key_is_named(tmp_path):
    path = tmp_path / 'video.npz'
    np.savez(path, image=np.zeros((3, 8, 8, 3), np.uint8), is_first=np.arange(3) == 0)
    message = one_line_error(path)
    assert "lacks 'reward', 'is_last', 'is_terminal', 'action' (it has image, is_first)" in message
    assert episodes.read(path, required=('image',)).keys() == {'image', 'is_first'}  # a reader may need less
    np.savez(path, image=np.zeros((3, 8, 8, 3), np.uint8), is_first=np.arange(2) == 0)
    assert 'leading length' in one_line_error(path, required=())


def test_counting_episodes_and_steps(tmp_path):
    assert episodes.count(tmp_path / 'none') == 0 and episodes.steps(tmp_path / 'none') == 0
    for length in (3, 7):
        episodes.write(tmp_path, make_episode(length))
    foreign = tmp_path / 'foreign-99.npz'  # not the format's name: its length is read from the file
    np.savez(foreign, **make_episode(2))
    assert episodes.count(tmp_path) == 3 and episodes.steps(tmp_path) == 12
    assert episodes.file_length(foreign) == 2


def test_copy_adds_what_is_missing_once_and_skips_unreadable_files(tmp_path):
    source, target = tmp_path / 'source', tmp_path / 'target'
    source.mkdir()
    written = [episodes.write(source, make_episode(length)) for length in (2, 3)]
    (source / 'broken.npz').write_bytes(b'not an npz')
    with pytest.warns(UserWarning, match='broken.npz'):
        assert episodes.copy(source, target) == 2
    assert [path.name for path in episodes.paths(target)] == [path.name for path in written]
    assert_same(episodes.read(target / written[1].name), make_episode(3))
    assert not list(target.glob('.*'))  # no temp files left
    with pytest.warns(UserWarning, match='broken.npz'):
        assert episodes.copy(source, target) == 0  # nothing twice


def test_dataset_info_round_trip_and_corrupt_file(tmp_path):
    assert episodes.read_info(tmp_path) is None
    info = {'task': 'grid_collect', 'env': {'env.size': [64, 64], 'env.time_limit': 12}, 'policy': 'random', 'noise': 0.0}
    episodes.write_info(tmp_path, info)
    assert episodes.read_info(tmp_path) == info
    assert json.loads((tmp_path / episodes.DATASET_FILE).read_text()) == info
    assert [path.name for path in tmp_path.iterdir()] == [episodes.DATASET_FILE]  # no temp file left
    for text in ('{"task": "grid_', '[1, 2]', '\xff'):
        (tmp_path / episodes.DATASET_FILE).write_bytes(text.encode('latin-1'))
        with pytest.raises(episodes.EpisodeError, match=f'unreadable {tmp_path / episodes.DATASET_FILE}: ') as caught:
            episodes.read_info(tmp_path)
        assert '\n' not in str(caught.value)


def test_episode_format_and_driver_never_import_tensorflow(tmp_path):
    result = run_fresh(tmp_path, '''
        from common import driver, episodes
        from vsg.offline import data
        path = episodes.write('.', {'reward': np.zeros(2, np.float32), 'is_first': np.array([True, False]),
                                    'is_last': np.array([False, True]), 'is_terminal': np.zeros(2, bool),
                                    'action': np.zeros((2, 1), np.float32)})
        episodes.read(path)
        report({'tensorflow': 'tensorflow' in sys.modules, 'collect': 'vsg.collect' in sys.modules})
    ''')
    assert result == {'tensorflow': False, 'collect': False}
