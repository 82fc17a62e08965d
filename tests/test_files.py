"""Atomic writes (common/files.py): a failed write keeps the old file and leaves no temp file."""
import json

import pytest

from common import files


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / 'a.json'
    files.write_json(path, {'x': 1})
    files.write_json(path, {'x': 2, 'y': [1, 2]})
    assert json.loads(path.read_text()) == {'x': 2, 'y': [1, 2]}
    assert path.read_text().endswith('\n')
    assert [p.name for p in tmp_path.iterdir()] == ['a.json']


def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    path = tmp_path / 'episode.npz'
    files.write_bytes(path, b'old')

    def fill(file):
        file.write(b'half of the new')
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        files.write(path, fill)
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['episode.npz']


def test_before_replace_sees_the_old_file_and_the_synced_temp(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    files.write_bytes(path, b'old')
    seen = {}

    def before():
        seen['target'] = path.read_bytes()
        seen['temps'] = sorted(p.read_bytes() for p in tmp_path.glob('.*.tmp'))

    files.write(path, lambda file: file.write(b'new'), before_replace=before)
    assert seen == {'target': b'old', 'temps': [b'new']}
    assert path.read_bytes() == b'new'
