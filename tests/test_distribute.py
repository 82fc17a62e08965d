"""tf.distribute (vsg/learner.py, common/replicas.py): a mirrored step on 2 logical CPU devices equals the
one-device step on the same global batch for every core; the float16 overflow skip under the strategy;
two workers on localhost ports train to equal parameters with one writer; the one-line refusals; the
replay ratio with several envs; a replay that picks up other processes' episodes."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import episodes, logger
from common.replay import Replay

ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, '-m', 'vsg.train', '--configs', 'debug', '--task', 'dmc_cartpole_balance']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'TF_NUM_INTRAOP_THREADS': '1', 'TF_NUM_INTEROP_THREADS': '1',
       'TF_CPP_MIN_LOG_LEVEL': '3'}
# eps 1 makes Adam's step grow with the gradient, so an update R times too large shows in the parameters
# (at DreamerV2's 1e-5 the first step is about lr * sign(gradient) whatever its size). One step each
# (the second Adam step adds nothing the first does not check; it costs test time).
SCALED = ['--steps', '1', '--model_opt.eps', '1', '--actor_opt.eps', '1', '--critic_opt.eps', '1',
          '--return_norm.on', 'True']
CASES = {
    'rssm': ['--pixels', '0', '--kl.free', '0.3', *SCALED],  # free nats above the KL: the floor is active
    'vsg': ['--pixels', '0', '--core', 'vsg', *SCALED],
    'svsg': ['--pixels', '0', '--configs', 'svsg', *SCALED],
    'slot': ['--core', 'slot', *SCALED],  # it brings its own image encoder, so it sees pixels
    'float16_overflow': ['--pixels', '0', '--precision', 'mixed_float16', '--overflow', '1'],
}
# Largest parameter difference, and largest relative metric difference (float32). Measured (2 steps):
# rssm, vsg, svsg 3e-8 and 3e-7; slot 2e-4 and 4e-5 (its conv encoder and decoder on 64x64 frames sum
# in another order over half the batch); float16 3e-5.
TOLERANCE = {'params': 1e-6, 'metrics': 1e-5}
SLOT_TOLERANCE = {'params': 1e-3, 'metrics': 1e-4}


def run(args, env=ENV):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope='module')
def mirrored():
    """{case: comparison} from one process (the logical devices are made before TensorFlow starts)."""
    result = run([sys.executable, 'tests/replica_step.py', *(','.join(flags) for flags in CASES.values())])
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(CASES, json.loads(result.stdout.strip().splitlines()[-1])))


@pytest.mark.parametrize('case', [case for case in CASES if case != 'float16_overflow'])
def test_mirrored_step_equals_the_one_device_step(mirrored, case):
    tolerance = SLOT_TOLERANCE if case == 'slot' else TOLERANCE
    assert mirrored[case]['params'] < tolerance['params']
    assert mirrored[case]['metrics'] < tolerance['metrics']
    # The return normaliser saw the global batch's returns on both replicas.
    assert mirrored[case]['mirrored']['return_scale'] == pytest.approx(mirrored[case]['default']['return_scale'])


def test_float16_overflow_skips_the_step_under_the_strategy(mirrored):
    case = mirrored['float16_overflow']
    for run_ in (case['default'], case['mirrored']):
        assert run_['model_opt_overflow'] == 1 and run_['model_opt_grad_norm'] == 0
        assert run_['model_opt_loss_scale'] == 2.0 ** 14  # halved once, by the second (infinite) batch
    assert case['params'] < 1e-4  # the first step, in float16 arithmetic


def _ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('localhost', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(args_of):
    """Runs 2 workers on localhost ports, worker i with args_of(i); their completed processes."""
    cluster = {'worker': [f'localhost:{port}' for port in _ports(2)]}
    procs = []
    for i in range(2):
        env = {**ENV, 'TF_CONFIG': json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': i}})}
        procs.append(subprocess.Popen(args_of(i), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    return [(proc.returncode, output) for proc, output in zip(procs, outputs)]


def test_two_workers_hold_equal_parameters(tmp_path):
    results = _workers(lambda i: [sys.executable, 'tests/replica_step.py', '--worker', str(tmp_path / f'{i}.npz'),
                                  '--strategy', 'multi_worker', '--pixels', '0', '--return_norm.on', 'True'])
    assert all(code == 0 for code, _ in results), results[0][1][-3000:] + results[1][1][-3000:]
    with np.load(tmp_path / '0.npz') as chief, np.load(tmp_path / '1.npz') as worker:
        assert len(chief.files) > 100
        for key in chief.files:  # each trained on its own batches, from the chief's initial weights
            np.testing.assert_array_equal(chief[key], worker[key])


def test_a_two_worker_run_completes_with_one_writer(tmp_path):
    logdir = tmp_path / 'run'
    results = _workers(lambda i: TRAIN + ['--logdir', str(logdir), '--steps', '150', '--strategy', 'multi_worker'])
    assert all(code == 0 for code, _ in results), results[0][1][-3000:] + results[1][1][-3000:]
    (_, chief), (_, worker) = results
    assert 'Writing metrics' in chief and 'Writing metrics' not in worker
    records = logger.read_records(logdir / logger.METRICS)
    assert max(r.get('stats/agent_steps', 0) for r in records) >= 150
    # One writer: 150 agent steps are at most 3 whole episodes of 50 (the debug time limit) per worker.
    assert 0 < episodes.count(logdir / 'replay') <= 3


@pytest.mark.parametrize('flags, fragment', [
    (['--strategy', 'multi_worker'], 'strategy=multi_worker needs a cluster'),
    (['--strategy', 'mirrored', '--strategy_devices', '2', '--batch_size', '3'],
     'batch_size=3 (the global batch) does not split over the 2 replicas'),
    (['--strategy', 'mirrored', '--strategy_devices', '2', '--jit', 'True'], 'jit=True cannot run under strategy'),
    (['--strategy', 'replicated'], "strategy='replicated' is not allowed; choose one of default, mirrored"),
])
def test_a_strategy_that_cannot_run_is_refused_in_one_line(tmp_path, flags, fragment):
    env = {key: value for key, value in ENV.items() if key not in ('TF_CONFIG', 'SLURM_NTASKS')}
    result = run(TRAIN + ['--logdir', str(tmp_path / 'run'), *flags], env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith('error: ') and fragment in result.stderr
    assert not (tmp_path / 'run' / 'replay').exists()


def test_workers_with_different_configs_are_refused(tmp_path):
    results = _workers(lambda i: TRAIN + ['--logdir', str(tmp_path / 'run'), '--strategy', 'multi_worker',
                                          '--seed', str(i)])
    for code, output in results:  # both refuse, so neither waits for the other
        assert code != 0 and 'error: the workers were started with different configs' in output


def test_several_envs_keep_the_replay_ratio(tmp_path):
    logdir = tmp_path / 'run'
    result = run(TRAIN + ['--logdir', str(logdir), '--steps', '400', '--env.amount', '4', '--eval_every', '1000'])
    assert result.returncode == 0, result.stderr[-3000:]
    stats = [r for r in logger.read_records(logdir / logger.METRICS) if 'stats/updates' in r]
    first, last = stats[0], stats[-1]
    # debug: train_ratio 1.6 over 2 x 8 replayed steps per update = 0.1 updates per agent step.
    rate = (last['stats/updates'] - first['stats/updates']) / (last['stats/agent_steps'] - first['stats/agent_steps'])
    assert rate == pytest.approx(0.1, abs=0.01)


def _episode(length):
    return {'image': np.zeros((length, 4, 4, 3), np.uint8), 'action': np.zeros((length, 2), np.float32),
            'reward': np.zeros(length, np.float32), 'is_first': np.arange(length) == 0,
            'is_last': np.arange(length) == length - 1, 'is_terminal': np.zeros(length, bool)}


def test_replay_picks_up_episodes_another_process_wrote_and_ignores_half_written_ones(tmp_path):
    replay = Replay(tmp_path)
    replay.add_episode(_episode(5))
    code = (f'import numpy as np; from common import episodes; from tests.test_distribute import _episode; '
            f'episodes.write({str(tmp_path)!r}, _episode(7))')
    assert subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=ENV).returncode == 0
    (tmp_path / '.20990101T000000.000000-half.npz.tmp').write_bytes(b'PK\x03\x04 cut short')  # a write under way
    (tmp_path / 'vanished.npz').write_bytes(b'not a zip')  # e.g. truncated by a crash elsewhere
    with pytest.warns(UserWarning, match='vanished.npz'):
        assert replay.refresh() == 1
    assert replay.num_episodes == 2 and replay.num_steps == 12
    assert replay.refresh() == 0  # nothing new; its own and the bad file are not read again
