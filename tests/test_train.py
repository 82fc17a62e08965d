"""End to end through the command line: train, kill, resume, evaluate, and refuse bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tensorboard.util import tensor_util

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, '-m', 'vsg.train', '--configs', 'debug', '--task', 'dmc_cartpole_balance']


def run(args, **kwargs):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)


def checkpoint_step(logdir, counter='step'):
    with np.load(logdir / 'checkpoint.npz') as data:
        return int(data[f'counters/{counter}'])


def replay_files(logdir):
    return sorted(p.name for p in (logdir / 'replay').glob('*.npz'))


def test_killed_run_resumes_step_counter_and_replay(tmp_path):
    logdir = tmp_path / 'run'
    args = TRAIN + ['--logdir', str(logdir), '--steps', '600', '--status_every', '1']
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + 300
    try:
        # Wait for a checkpoint written after training began (prefill is 100 steps, saves every 100).
        while time.time() < deadline and proc.poll() is None:
            if (logdir / 'checkpoint.npz').exists() and checkpoint_step(logdir) >= 300:
                break
            time.sleep(0.5)
        assert proc.poll() is None, 'run ended before it could be killed:\n' + proc.stdout.read()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_step, killed_seconds = checkpoint_step(logdir), checkpoint_step(logdir, 'seconds')
    killed_files = replay_files(logdir)
    assert 300 <= killed_step < 600 and killed_files
    assert not list(logdir.glob('.checkpoint*')), 'a temp file of an interrupted save is left behind'

    resumed = run(args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f'Resumed from {logdir / "checkpoint.npz"} at step {killed_step}' in resumed.stdout
    assert 'Prefilling' not in resumed.stdout and 'Pretraining' not in resumed.stdout
    assert f'Loaded {len(killed_files)} episodes' in resumed.stdout
    assert 'status: train | agent step ' in resumed.stdout and '/600 | env frames ' in resumed.stdout
    assert 'train/model_opt_loss' in resumed.stdout and 'stats/replay_steps' not in resumed.stdout  # terminal: a few
    assert checkpoint_step(logdir) >= 600
    files = replay_files(logdir)
    assert set(killed_files) < set(files), 'resumed run must keep the old episodes and add new ones'
    lines = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
    # One x-axis: records are stamped with env frames (debug: action repeat 2), agent steps a scalar.
    stamped = [line for line in lines if 'stats/agent_steps' in line]
    assert stamped and all(line['step'] == 2 * line['stats/agent_steps'] for line in stamped)
    assert max(line['stats/agent_steps'] for line in stamped) >= 600
    assert any('train/model_opt_loss' in line and 'stats/replay_steps' in line for line in lines)
    assert any('eval/return' in line for line in lines)
    assert (logdir / 'config.yaml').exists()
    # The run's wall time goes on from the killed checkpoint's count, not from zero.
    assert killed_seconds > 0 and checkpoint_step(logdir, 'seconds') > killed_seconds
    hours = [line['stats/wall_hours'] for line in lines if 'stats/wall_hours' in line]
    assert hours[-1] * 3600 >= killed_seconds and all('stats/wall_hours' in line for line in lines if 'eval/return' in line)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(logdir), size_guidance={'tensors': 0, 'images': 0})
    events.Reload()
    assert {'train/model_opt_loss', 'train/kl', 'eval/return', 'stats/env_frames_per_s'} <= set(events.Tags()['tensors'])
    for record in events.Tensors('stats/agent_steps'):   # TensorBoard's step is env frames too
        assert record.step == 2 * int(tensor_util.make_ndarray(record.tensor_proto))
    assert {'eval_video/policy', 'train_video/open_loop'} <= set(events.Tags()['images'])
    plotted = run([sys.executable, '-m', 'vsg.plot', str(logdir), '--out', str(tmp_path / 'curve.png'),
                   '--baseline', 'random=1.0'])
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / 'curve.png').read_bytes()[:4] == b'\x89PNG'

    evaluated = run([sys.executable, '-m', 'vsg.evaluate', '--logdir', str(logdir), '--episodes', '2'])
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert report['episodes'] == 2 and len(report['returns']) == 2
    assert report['step'] == checkpoint_step(logdir)
    assert Path(report['video']).stat().st_size > 0
    zero = run([sys.executable, '-m', 'vsg.evaluate', '--logdir', str(logdir), '--episodes', '1', '--policy', 'zero',
                '--video', str(tmp_path / 'zero.gif')])
    assert zero.returncode == 0, zero.stderr
    assert json.loads(zero.stdout.strip().splitlines()[-1])['policy'] == 'zero'
    # The RSSM's feature attends over no parts: its attention video is refused in one line.
    attention = run([sys.executable, '-m', 'vsg.evaluate', '--logdir', str(logdir), '--episodes', '1',
                     '--attention', str(tmp_path / 'attention.gif')])
    assert attention.returncode != 0 and not (tmp_path / 'attention.gif').exists()
    assert attention.stderr.strip().splitlines()[-1] == (
        "error: --attention needs a core whose feature attends over slots (slot); this run's core is rssm")


def test_sigterm_saves_the_progress_since_the_last_checkpoint(tmp_path):
    logdir = tmp_path / 'run'
    # No periodic saves: any checkpoint is the one written on the way out.
    args = TRAIN + ['--logdir', str(logdir), '--steps', '100000', '--save_every', '100000',
                    '--save_every_minutes', '0', '--status_every', '1']
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.time() + 300
    for line in proc.stdout:  # Training has begun once a status line says so.
        lines.append(line)
        if 'status: train' in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out = ''.join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out
    assert f'Interrupted: saved {logdir / "checkpoint.npz"} at agent step ' in out
    saved = checkpoint_step(logdir)
    assert saved > 100  # past debug's 100 prefill steps
    resumed = run(TRAIN + ['--logdir', str(logdir), '--steps', str(saved + 20)])
    assert resumed.returncode == 0 and f'Resumed from {logdir / "checkpoint.npz"} at step {saved}' in resumed.stdout


def test_discrete_actions_train_end_to_end_on_the_gridworld(tmp_path):
    # grid_collect ends only at the time limit: 150 steps, longer than debug's prefill of 100 steps,
    # so the prefill must run on to finish an episode before training can sample one.
    logdir = tmp_path / 'grid'
    result = run([sys.executable, '-m', 'vsg.train', '--configs', 'debug', '--task', 'grid_collect',
                  '--env.action_repeat', '1', '--env.time_limit', '150', '--logdir', str(logdir)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Prefilling replay with 100 random steps and at least one whole episode.' in result.stdout
    assert checkpoint_step(logdir) >= 300
    assert min(int(name.rsplit('-', 1)[1][:-4]) for name in replay_files(logdir)) == 151  # whole episodes
    for name in replay_files(logdir):
        with np.load(logdir / 'replay' / name) as episode:
            actions = episode['action']
            assert actions.dtype == np.float32 and actions.shape[1:] == (5,)
            assert np.all(actions[0] == 0)
            # One-hot up to the float rounding of straight-through samples.
            np.testing.assert_allclose(np.sort(actions[1:], -1), np.eye(5)[[-1] * (len(actions) - 1)], atol=1e-6)
    lines = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines()]
    assert any('eval/return' in line for line in lines)
    assert any('train/actor_opt_loss' in line for line in lines)


def test_train_ratio_holds_with_more_envs_than_agent_steps_per_update(tmp_path):
    # Three envs step together and debug's 2x8 batch at train_ratio 16 is one update per agent step:
    # each batch step owes three updates (the old train_every fired at most once per batch step).
    logdir = tmp_path / 'grid'
    result = run([sys.executable, '-m', 'vsg.train', '--configs', 'debug', '--task', 'grid_collect', '--env.amount', '3',
                  '--env.parallel', 'false', '--env.action_repeat', '1', '--env.time_limit', '30', '--train_ratio', '16',
                  '--logdir', str(logdir)])
    assert result.returncode == 0, result.stdout + result.stderr
    last = [json.loads(line) for line in (logdir / 'metrics.jsonl').read_text().splitlines() if 'stats/updates' in line][-1]
    # Training began after the 100 prefill steps (episodes of 31 steps end within 6 steps of it), then 2
    # pretrain updates and one update per agent step: about 200 in all, where once per batch step was 70.
    assert 195 <= last['stats/updates'] <= 205, last


@pytest.mark.parametrize('extra, fragment', [
    (['--task', 'dmc_cartpole_nope'], "dmc_cartpole_nope"),
    (['--task', 'atari_pong'], "atari_pong"),
    (['--task', 'gym_NoSuchEnv-v0'], "gym_NoSuchEnv-v0"),
    (['--rssm.detr', '4'], "unknown flag '--rssm.detr'"),
    (['--core', 'lstm'], "core='lstm' is not allowed"),
    (['--actor.init_std', '5'], 'actor.init_std must lie strictly between'),
])
def test_bad_input_exits_nonzero_with_one_line(tmp_path, extra, fragment):
    result = run(TRAIN + ['--logdir', str(tmp_path / 'run')] + extra)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and fragment in last, result.stderr
    assert not (tmp_path / 'run' / 'checkpoint.npz').exists()


def test_missing_logdir_is_an_error():
    result = run(TRAIN)
    assert result.returncode != 0 and '--logdir is required' in result.stderr


WEIGHTS_HASH = '''
import hashlib, sys
import numpy as np
from vsg import build
config = build.parse(['--configs', 'debug', '--task', 'dmc_cartpole_balance', '--seed', sys.argv[1],
                      '--logdir', 'unused'])
env = build.make_envs(config, 1, 0)[0]
agent, _ = build.make_agent(config, env)
env.close()
print(hashlib.sha256(b''.join(np.asarray(v).tobytes() for v in agent.variables)).hexdigest())
'''


def test_the_initial_weights_are_a_function_of_the_seed():
    # Separate processes, as two runs are: nothing carries over from one build to the next.
    procs = [subprocess.Popen([sys.executable, '-c', WEIGHTS_HASH, seed], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in ('0', '0', '1')]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    first, again, other = (out.strip().splitlines()[-1] for out, _ in outputs)
    assert first == again and first != other
