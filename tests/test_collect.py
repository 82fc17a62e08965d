"""vsg.collect through its command line: replay-format episodes with true actions, top-up to N,
distinct episodes across workers, the noisy expert, a checkpoint policy, and one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsg import collect

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1',
       'TF_CPP_MIN_LOG_LEVEL': '3'}
GRID = ['--task', 'grid_collect', '--env.action_repeat', '1', '--env.time_limit', '12']


def run(*args, timeout=300):
    return subprocess.run([sys.executable, '-m', 'vsg.collect', *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def episodes(directory):
    return sorted(path.name for path in Path(directory).glob('*.npz'))


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_episodes_hold_true_actions_and_a_rerun_tops_up(tmp_path):
    out = tmp_path / 'data'
    first = run(*GRID, '--episodes', 3, '--outdir', out, '--seed', 1, '--status_every', 0)
    assert first.returncode == 0, first.stderr
    assert 'collect: 3/3 episodes' in first.stdout and 'ETA' in first.stdout
    names = episodes(out)
    assert len(names) == 3 and all(name.endswith('-13.npz') for name in names)  # 12 steps + the first obs
    episode = load(out / names[0])
    assert {'image', 'action', 'reward', 'is_first', 'is_last', 'is_terminal'} <= set(episode)
    assert episode['image'].shape == (13, 64, 64, 3) and episode['action'].shape == (13, 5)
    assert not episode['action'][0].any() and np.all(episode['action'][1:].sum(-1) == 1)  # one-hot, zeros first
    assert json.loads((out / 'dataset.json').read_text())['task'] == 'grid_collect'

    more = run(*GRID, '--episodes', 5, '--outdir', out, '--seed', 1)
    assert more.returncode == 0, more.stderr
    assert '2 episodes of grid_collect' in more.stdout and '(3 there already)' in more.stdout
    assert set(names) < set(episodes(out)) and len(episodes(out)) == 5
    (out / '.partial.npz.tmp').write_bytes(b'cut short')  # a write a kill interrupted is not an episode
    same = run(*GRID, '--episodes', 5, '--outdir', out, '--seed', 1)
    assert same.returncode == 0 and 'nothing to do' in same.stdout and len(episodes(out)) == 5


def test_workers_write_distinct_episodes(tmp_path):
    out = tmp_path / 'data'
    result = run(*GRID, '--episodes', 4, '--outdir', out, '--workers', 2, '--seed', 0)
    assert result.returncode == 0, result.stderr
    names = episodes(out)
    assert len(names) == 4
    actions = [load(out / name)['action'].tobytes() for name in names]
    assert len(set(actions)) == 4, 'workers repeated an episode (seeds must differ)'
    assert collect.worker_seed(0, 0, 0) != collect.worker_seed(0, 0, 1) != collect.worker_seed(0, 2, 1)


def test_noisy_expert_on_bbs(tmp_path):
    out = tmp_path / 'bbs'
    result = run('--task', 'bbs_dense', '--env.time_limit', 40, '--env.action_repeat', 4, '--env.bbs.max_objects', 1,
                 '--policy', 'expert', '--noise', 0.5, '--episodes', 1, '--outdir', out)
    assert result.returncode == 0, result.stderr
    episode = load(out / episodes(out)[0])
    assert episode['action'].shape == (11, 2) and np.abs(episode['action']).max() <= 1
    assert {'success', 'log_scored'} <= set(episode)
    assert json.loads((out / 'dataset.json').read_text())['policy'] == 'expert'


def test_noise_replaces_actions_with_random_ones():
    space = type('Box', (), {'shape': (2,)})()
    expert = lambda obs, state: (np.full((500, 2), 5.0, np.float32), state)
    obs = {'is_first': np.zeros(500, bool)}
    rng = np.random.default_rng(0)
    assert np.all(collect.noisy(expert, space, 0.0, rng)(obs, None)[0] == 5)
    actions = collect.noisy(expert, space, 0.3, rng)(obs, None)[0]
    replaced = np.all(actions != 5, -1)
    assert 0.2 < replaced.mean() < 0.4 and np.abs(actions[replaced]).max() <= 1


def test_checkpoint_policy(tmp_path):
    """A freshly initialised agent saved as vsg.train would, then collected with in env workers."""
    logdir = tmp_path / 'agent'
    make = ('import pathlib, sys; from vsg import build; from common import checkpoint; '
            'config = build.parse(sys.argv[1:]); config.save(pathlib.Path(config.logdir) / "config.yaml"); '
            'env = build.make_envs(config, 1, 0)[0]; agent, _ = build.make_agent(config, env, config.logdir); '
            'checkpoint.save(pathlib.Path(config.logdir) / build.CHECKPOINT, agent.variables, {"step": 0}); env.close()')
    logdir.mkdir()
    made = subprocess.run([sys.executable, '-c', make, '--configs', 'debug', *GRID, '--logdir', str(logdir)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    out = tmp_path / 'data'
    result = run(*GRID, '--policy', f'checkpoint:{logdir}', '--episodes', 2, '--workers', 2, '--outdir', out)
    assert result.returncode == 0, result.stderr
    assert len(episodes(out)) == 2
    wrong = run('--task', 'grid_reach', '--policy', f'checkpoint:{logdir}', '--episodes', 1, '--outdir', tmp_path / 'x')
    assert wrong.returncode != 0 and 'was trained on grid_collect' in wrong.stderr


def test_a_dmc_policy_fits_its_dcs_twin_and_nothing_else():
    from vsg.collect import policy_fits
    assert policy_fits('dmc_cartpole_balance', 'dcs_cartpole_balance')
    assert policy_fits('dcs_cartpole_balance', 'dmc_cartpole_balance')
    assert policy_fits('grid_collect', 'grid_collect')
    assert not policy_fits('dmc_cartpole_balance', 'dcs_cartpole_swingup')
    assert not policy_fits('grid_collect', 'grid_reach')


@pytest.mark.parametrize('args, message', [
    (['--episodes', 2], '--outdir'),
    (['--episodes', 0, '--outdir', 'OUT'], '--episodes=0 must be at least 1'),
    (['--episodes', 1, '--workers', 0, '--outdir', 'OUT'], '--workers=0'),
    (['--episodes', 1, '--noise', 1.5, '--outdir', 'OUT'], '--noise=1.5'),
    (['--episodes', 1, '--policy', 'greedy', '--outdir', 'OUT'], "--policy 'greedy' is not allowed"),
    (['--episodes', 1, '--policy', 'expert', '--task', 'gym_CartPole-v1', '--outdir', 'OUT'],
     'gym_CartPole-v1 has no scripted expert'),
    (['--episodes', 1, '--policy', 'checkpoint:no/such/run', '--outdir', 'OUT'], 'does not exist'),
    (['--episodes', 1, '--env.nope', 1, '--outdir', 'OUT'], "unknown flag '--env.nope'"),
    (['--episodes', 1, '--task', 'grid_nope', '--outdir', 'OUT'], "Unknown grid task 'grid_nope'"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, message):
    args = [str(tmp_path / 'out') if arg == 'OUT' else arg for arg in args]
    result = run(*GRID, *args)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr and result.stderr.strip().count('\n') == 0, result.stderr
    assert result.stderr.startswith('error: ') and message in result.stderr, result.stderr


def test_a_directory_of_other_settings_is_refused(tmp_path):
    out = tmp_path / 'data'
    assert run(*GRID, '--episodes', 1, '--outdir', out).returncode == 0
    other = run(*GRID, '--env.time_limit', 20, '--episodes', 2, '--outdir', out)
    assert other.returncode != 0 and 'collected with other settings (env differ' in other.stderr
    (out / 'dataset.json').write_text('{"task": ')  # cut short by hand: refused, not overwritten
    broken = run(*GRID, '--episodes', 2, '--outdir', out)
    assert broken.returncode != 0 and broken.stderr.startswith(f"error: unreadable {out / 'dataset.json'}: ")
    assert broken.stderr.strip().count('\n') == 0, broken.stderr
    (tmp_path / 'file').write_text('')
    assert 'is not a directory' in run(*GRID, '--episodes', 1, '--outdir', tmp_path / 'file').stderr


def test_a_dataset_written_before_a_setting_existed_tops_up_with_its_default(tmp_path):
    out = tmp_path / 'data'
    assert run(*GRID, '--episodes', 1, '--outdir', out).returncode == 0
    info = json.loads((out / 'dataset.json').read_text())
    del info['env']['env.grid.side']  # as if the setting came after the dataset (so segmentation did)
    (out / 'dataset.json').write_text(json.dumps(info))
    assert run(*GRID, '--episodes', 2, '--outdir', out).returncode == 0
    assert json.loads((out / 'dataset.json').read_text()) == info  # kept as written
    other = run(*GRID, '--env.grid.side', 6, '--episodes', 3, '--outdir', out)
    assert other.returncode != 0 and 'collected with other settings (env differ' in other.stderr


def _grid_config(*flags):
    return collect._config(['--configs', 'debug', *GRID, *map(str, flags)])


def test_seed_replay_copies_each_episode_once_and_refuses_what_does_not_fit(tmp_path):
    import envs
    from common.replay import Replay
    data = tmp_path / 'data'
    assert run(*GRID, '--episodes', 2, '--outdir', data, '--seed', 3).returncode == 0
    env = envs.make('grid_collect', seed=0, action_repeat=1, time_limit=12)
    replay_dir = tmp_path / 'run' / 'replay'
    config = _grid_config('--prefill_from', data)
    assert collect.seed_replay(config, env, replay_dir) == 2
    assert episodes(replay_dir) == episodes(data)
    assert collect.seed_replay(config, env, replay_dir) == 0  # a resumed run copies nothing twice
    replay = Replay(replay_dir)
    assert replay.num_episodes == 2 and replay.num_steps == 26
    np.testing.assert_array_equal(replay.sample(1, 4)['action'].shape, (1, 4, 5))

    cases = [
        (_grid_config('--prefill_from', tmp_path / 'none'), 'holds no episode files'),
        (_grid_config('--prefill_from', data, '--env.time_limit', 20), "'env.time_limit': 20"),
    ]
    for bad, fragment in cases:
        with pytest.raises(SystemExit, match='error: prefill_from') as caught:
            collect.seed_replay(bad, env, tmp_path / 'other')
        assert fragment in str(caught.value) and '\n' not in str(caught.value)
    (data / 'dataset.json').unlink()  # a run's replay/ has no dataset.json: the episodes' shapes are checked instead
    small = envs.make('grid_collect', seed=0, size=(32, 32), action_repeat=1, time_limit=12)
    with pytest.raises(SystemExit, match="keys and shapes .* this run's env gives .*32, 32, 3"):
        collect.seed_replay(_grid_config('--prefill_from', data), small, tmp_path / 'other')
    assert not list((tmp_path / 'other').glob('*.npz'))
