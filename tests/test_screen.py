"""vsg.screen: trains only the world model on a replay it never writes, and reports vsg.diagnose's numbers."""
import json

import numpy as np
import pytest

from common.replay import Replay
from vsg import screen

FLAGS = ['--configs', 'debug', '--task', 'dmc_cartpole_balance', '--jit', 'false']


def fill_replay(directory, episodes=2, length=20):
    r = np.random.default_rng(0)
    replay = Replay(directory)
    for _ in range(episodes):
        replay.add_episode({
            'image': r.integers(0, 256, (length, 64, 64, 3)).astype(np.uint8),
            'action': r.uniform(-1, 1, (length, 1)).astype(np.float32),
            'reward': r.uniform(0, 1, length).astype(np.float32),
            'is_first': np.arange(length) == 0,
            'is_last': np.arange(length) == length - 1,
            'is_terminal': np.zeros(length, bool)})


def test_world_model_updates_and_diagnosis_leave_the_replay_untouched(tmp_path, capsys):
    fill_replay(tmp_path)
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    screen.main(['--replay', str(tmp_path), '--updates', '3', '--context', '2', '--horizon', '4'] + FLAGS)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['updates'] == 3 and report['flags'] == ' '.join(FLAGS)
    assert len(report['open_loop_reward_mse']) == 4
    assert set(report['constant_action_reward']) == {'0', '+1', '-1'}
    assert np.isfinite(report['image_loss']) and np.isfinite(report['reward_loss'])
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == before


@pytest.mark.parametrize('extra, fragment', [
    (['--updates', '0'], '--updates=0 must be at least 1'),
    ([], 'holds no episode files'),
])
def test_bad_input_is_one_line(tmp_path, extra, fragment):
    if extra:
        fill_replay(tmp_path)
    with pytest.raises(SystemExit) as error:
        screen.main(['--replay', str(tmp_path)] + extra + FLAGS)
    assert fragment in str(error.value)
