"""Observability: TensorBoard events readable by TensorBoard itself, the plot command, the benchmark JSON."""
import json
import subprocess
import sys
from pathlib import Path

import elements
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from common import logger as logger_lib
from vsg import plot

ROOT = Path(__file__).resolve().parent.parent


def read_events(logdir):
    events = EventAccumulator(str(logdir), size_guidance={'tensors': 0, 'images': 0, 'histograms': 0})
    events.Reload()
    return events


def test_tensorboard_holds_scalars_histograms_and_gif_videos(tmp_path):
    step = elements.Counter(7)
    logger = logger_lib.make(tmp_path, step, action_repeat=1)
    video = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), np.uint8)
    logger.add({'loss': 1.5, 'rate': np.linspace(0, 1, 10)}, prefix='train')
    logger.add({'policy': video}, prefix='eval_video')
    logger.write()
    logger.close()
    events = read_events(tmp_path)
    tags = events.Tags()
    assert 'train/loss' in tags['tensors'] and 'train/rate' in tags['tensors']
    scalar = events.Tensors('train/loss')[0]
    assert scalar.step == 7 and float(tensor_util.make_ndarray(scalar.tensor_proto)) == 1.5
    assert 'eval_video/policy' in tags['images']
    image = events.Images('eval_video/policy')[0]
    assert image.encoded_image_string[:6] == b'GIF89a' and (image.width, image.height) == (16, 16)
    lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
    assert lines == [{'step': 7, 'train/loss': 1.5}]


def test_terminal_shows_only_the_chosen_scalars_in_their_order(capsys):
    output = logger_lib.TerminalOutput(['train/return', 'train/kl'])
    output([(5, 'train/kl', np.asarray(0.5)), (5, 'train/prior_ent', np.asarray(3.0)),
            (5, 'train/return', np.asarray(12.0))])
    printed = capsys.readouterr().out
    assert 'train/return 12 / train/kl 0.5' in printed and 'prior_ent' not in printed
    output([(6, 'stats/replay_steps', np.asarray(9.0))])  # nothing chosen: no empty block
    assert capsys.readouterr().out == ''


class FakeClock:

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_status_prints_at_its_interval_with_rates_and_eta(capsys):
    clock, counted = FakeClock(), {'steps': 1000, 'updates': 0, 'reads': 0}

    def counts():
        counted['reads'] += 1
        return counted['steps'], counted['updates']

    status = logger_lib.Status(30, total_steps=9000, action_repeat=8, counts=counts, clock=clock)
    status.phase = 'train'
    clock.now += 29
    counted.update(steps=1300, updates=100)
    status.maybe_print()
    assert capsys.readouterr().out == '' and counted['reads'] == 1  # only the start was read
    clock.now += 11
    counted.update(steps=1600, updates=200)
    status.maybe_print()
    # Over 40 s: 600 steps (15/s, 120 frames/s at repeat 8), 200 updates (5/s); 7,400 steps left take 493 s.
    assert capsys.readouterr().out == (
        'status: train | agent step 1,600/9,000 | env frames 12,800 | 5.00 updates/s | 120.0 env frames/s | '
        'ETA 8m13s | last eval return -\n')
    clock.now += 29.9
    status.maybe_print()
    assert capsys.readouterr().out == ''  # the interval restarts at each line
    clock.now += 0.1
    status.phase, status.eval_return = 'eval', 382.46
    status.maybe_print()  # evaluation does not advance agent steps: no rate, no ETA
    assert capsys.readouterr().out.endswith('0.00 updates/s | 0.0 env frames/s | ETA - | last eval return 382.5\n')
    clock.now += 30
    counted.update(steps=1603)
    status.maybe_print()  # 0.1 steps/s: 7,397 steps take 20 h 32 min
    line = capsys.readouterr().out
    assert line.startswith('status: eval | agent step 1,603/9,000 |') and '| ETA 20h32m |' in line


def test_status_every_zero_never_prints(capsys):
    clock = FakeClock()
    status = logger_lib.Status(0, total_steps=10, action_repeat=1, counts=lambda: (0, 0), clock=clock)
    clock.now += 1e6
    status.maybe_print()
    assert capsys.readouterr().out == ''


def test_plot_writes_a_png_with_baselines(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'metrics.jsonl').write_text(
        '\n'.join(json.dumps({'step': s, 'eval/return': r}) for s, r in [(100, 10.0), (200, 30.0)]) + '\n')
    elements.Config({'env': {'action_repeat': 2}}).save(run / 'config.yaml')
    steps, values = plot.read_curve(run, 'eval/return')
    assert steps.tolist() == [200, 400] and values.tolist() == [10.0, 30.0]
    out = plot.plot([run], tmp_path / 'curve.png', baselines=[('random', 5.0)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    both = plot.plot([run], tmp_path / 'both.png', keys=['eval/return', 'train/return'])
    assert both.exists()  # a key missing from a run is skipped, not an error
    with pytest.raises(ValueError, match="no run has values for 'train/return'"):
        plot.plot([run], tmp_path / 'none.png', keys=['train/return'])


def test_reach_names_the_first_frame_at_the_value_and_the_wall_hours_then(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    records = [{'step': 0, 'eval/return': 100.0, 'stats/agent_steps': 0, 'stats/wall_hours': 0.0},
               {'step': 1000, 'stats/wall_hours': 1.0, 'stats/agent_steps': 500},
               {'step': 2000, 'eval/return': 850.0, 'stats/agent_steps': 1000, 'stats/wall_hours': 3.0},
               {'step': 3000, 'eval/return': 700.0, 'stats/agent_steps': 1500, 'stats/wall_hours': 4.0},
               {'step': 4000, 'eval/return': 900.0, 'stats/agent_steps': 2000, 'stats/wall_hours': 5.0}]
    (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    assert plot.reach(run, 'eval/return', 800) == {
        'run': str(run), 'key': 'eval/return', 'reach': 800, 'env_frames': 2000, 'wall_hours': 3.0}
    assert plot.reach(run, 'eval/return', 900)['env_frames'] == 4000
    assert plot.reach(run, 'eval/return', 950)['env_frames'] is None
    old = _write_run(tmp_path / 'old', [(0, 10.0), (100, 900.0)], repeat=2)  # no wall clock logged
    assert plot.reach(old, 'eval/return', 800) == {
        'run': str(old), 'key': 'eval/return', 'reach': 800, 'env_frames': 200, 'wall_hours': None}


def test_run_clock_adds_this_process_time_to_the_saved_count():
    now = [100.0]
    clock = logger_lib.RunClock(before=7200, clock=lambda: now[0])
    assert clock() == 7200
    now[0] += 90
    assert clock() == 7290


def _write_run(path, points, repeat=2, key='eval/return'):
    path.mkdir(parents=True)
    (path / 'metrics.jsonl').write_text(''.join(json.dumps({'step': s, key: r}) + '\n' for s, r in points))
    if repeat:
        elements.Config({'env': {'action_repeat': repeat}}).save(path / 'config.yaml')
    return path


def test_group_curve_is_the_mean_with_a_band_on_common_frames(tmp_path):
    a = _write_run(tmp_path / 'a', [(0, 0.0), (100, 10.0), (200, 20.0), (300, 90.0)])
    b = _write_run(tmp_path / 'b', [(0, 4.0), (100, 20.0), (100, 40.0), (200, 40.0)])  # 100 logged twice
    frames, mean, low, high = plot.group_curve([a, b], 'eval/return', 'minmax')
    assert frames.tolist() == [0, 200, 400]                     # only where both runs have data
    np.testing.assert_allclose(mean, [2.0, 20.0, 30.0])       # b's two values at frame 200 average to 30
    np.testing.assert_allclose(low, [0.0, 10.0, 20.0])
    np.testing.assert_allclose(high, [4.0, 30.0, 40.0])
    _, mean, low, high = plot.group_curve([a, b], 'eval/return', 'stderr')
    np.testing.assert_allclose(high - mean, [2.0, 10.0, 10.0])   # std (ddof 1) / sqrt(2) = |a - b| / 2
    np.testing.assert_allclose(mean - low, high - mean)


def test_old_agent_step_logs_convert_to_frames_once_and_plot_the_same(tmp_path):
    run = _write_run(tmp_path / 'old', [(0, 1.0), (50, 2.0), (100, 3.0)], repeat=8)
    before = plot.read_curve(run, 'eval/return')
    assert before[0].tolist() == [0, 400, 800]                  # no agent_steps mark: steps x repeat
    assert logger_lib.convert_to_frames(run, 8)
    records = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records] == [0, 400, 800, 800] and records[-1] == {'step': 800, 'stats/agent_steps': 100}
    assert not logger_lib.convert_to_frames(run, 8)             # marked: a second resume leaves it
    after = plot.read_curve(run, 'eval/return')
    assert after[0].tolist() == before[0].tolist() and after[1].tolist() == before[1].tolist()
    assert not list(run.glob('.*.tmp'))


def test_a_line_torn_by_a_kill_is_left_out_and_a_corrupt_one_named(tmp_path):
    run = _write_run(tmp_path / 'torn', [(0, 1.0), (50, 2.0)], repeat=8)
    with open(run / 'metrics.jsonl', 'a') as file:
        file.write('{"step": 100, "eval/ret')      # a write cut short: no closing brace, no newline
    assert plot.read_curve(run, 'eval/return')[0].tolist() == [0, 400]
    assert logger_lib.convert_to_frames(run, 8)   # resuming rewrites the file without the torn line
    records = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records] == [0, 400, 400]
    bad = _write_run(tmp_path / 'bad', [(0, 1.0), (50, 2.0)], repeat=8)
    lines = (bad / 'metrics.jsonl').read_text().splitlines()
    (bad / 'metrics.jsonl').write_text('\n'.join([lines[0], 'garbage', lines[1]]) + '\n')
    with pytest.raises(ValueError, match=r'metrics.jsonl: line 2 is not JSON; the file is corrupt'):
        plot.read_curve(bad, 'eval/return')
    with pytest.raises(SystemExit, match='line 2 is not JSON'):
        plot.main([str(bad), '--out', str(tmp_path / 'x.png')])


def test_dreamerv2_logdirs_plot_in_env_frames_with_underscore_keys(tmp_path):
    ours = _write_run(tmp_path / 'ours', [(50, 1.0), (100, 2.0)], repeat=8)
    reference = _write_run(tmp_path / 'ref', [(400, 3.0), (800, 5.0)], repeat=0, key='eval_return')
    assert plot.read_curve(reference, 'eval/return')[0].tolist() == [400, 800]
    frames, mean, _, _ = plot.group_curve([ours, reference], 'eval/return')
    assert frames.tolist() == [400, 800] and mean.tolist() == [2.0, 3.5]


def test_plot_cli_groups_runs_by_glob_and_rejects_bad_input(tmp_path, capsys):
    for seed in range(3):
        _write_run(tmp_path / 'rssm' / f'seed_{seed}', [(0, seed), (100, 10.0 + seed)])
    out = tmp_path / 'grouped.png'
    plot.main(['--group', f'rssm={tmp_path}/rssm/seed_*', '--band', 'stderr', '--out', str(out), '--baseline', 'random=1'])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(SystemExit, match='matches no run directory'):
        plot.main(['--group', f'vsg={tmp_path}/vsg/*', '--out', str(out)])
    with pytest.raises(SystemExit):
        plot.main(['--group', 'no-equals-sign', '--out', str(out)])
    assert "must look like LABEL=GLOB" in capsys.readouterr().err


def test_published_curves_are_the_mean_and_range_over_seeds(tmp_path, capsys):
    scores = tmp_path / 'published.csv'
    scores.write_text('source,task,method,seed,env_frames,return\n'
                      's,dmc_a,m,1,100,10\ns,dmc_a,m,1,200,30\ns,dmc_a,m,2,100,20\ns,dmc_a,m,2,200,50\n'
                      's,dmc_a,m,2,300,70\ns,dmc_b,m,1,100,99\n')
    frames, mean, low, high, seeds = plot.published_curve(scores, 'dmc_a', 'm')
    assert frames.tolist() == [100, 200] and seeds == 2  # only the frames every seed reports
    assert mean.tolist() == [15, 40] and low.tolist() == [10, 30] and high.tolist() == [20, 50]
    _write_run(tmp_path / 'run', [(0, 1.0), (100, 2.0)])
    out = tmp_path / 'with_published.png'
    plot.main([str(tmp_path / 'run'), '--published', f'ref={scores}:dmc_a:m', '--max_frames', '150', '--out', str(out)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(SystemExit, match="no rows of task 'dmc_c'"):
        plot.main([str(tmp_path / 'run'), '--published', f'ref={scores}:dmc_c:m', '--out', str(out)])
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path / 'run'), '--published', 'ref=only_a_path', '--out', str(out)])
    assert 'must look like LABEL=CSV:TASK:METHOD' in capsys.readouterr().err


def test_benchmark_prints_every_field():
    result = subprocess.run(
        [sys.executable, '-m', 'vsg.bench', '--configs', 'debug', '--task', 'dmc_cartpole_balance', '--profile'],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ('compile_s', 'train_step_ms', 'updates_per_s', 'policy_step_ms', 'env_steps_per_s',
                'peak_rss_mb', 'train_step_gflop', 'achieved_gflops'):
        assert isinstance(report[key], (int, float)) and report[key] > 0, key
    assert report['precision'] == 'float32' and report['core'] == 'rssm' and report['sizes']['batch'] == [2, 8]
    assert 'avx2' in report['cpu']['flags'] or 'avx512f' in report['cpu']['flags'] or report['cpu']['flags'] == []
    for dtype in ('float32', 'bfloat16', 'float16'):
        assert report['calibration'][dtype]['matmul_gflops'] > 0 and report['calibration'][dtype]['conv_gflops'] > 0
    fraction = report['achieved_gflops'] / report['calibration']['float32']['matmul_gflops']
    assert report['achieved_fraction_of_matmul'] == pytest.approx(fraction, abs=1e-3)
    assert report['loop_env_frames_per_s']['overlapped'] >= report['loop_env_frames_per_s']['sequential'] > 0
    parts = report['profile_ms']
    assert set(parts) == {'encoder', 'observe_scan', 'decoder', 'reward_cont_heads', 'kl', 'imagination_scan',
                          'actor', 'critic', 'optimizers', 'sum_of_parts'}
    assert all(ms > 0 for ms in parts.values())
    assert parts['sum_of_parts'] == pytest.approx(sum(v for k, v in parts.items() if k != 'sum_of_parts'), abs=0.2)


def test_loop_prediction_against_a_hand_computation():
    from vsg.bench import predicted_loop
    # Per 3 agent steps of 8 frames: 3 x (3 ms policy + 20 ms env) + one 300 ms update = 369 ms sequentially;
    # overlapped, the update hides one env step: 3 x 3 + 2 x 20 + max(20, 300) = 349 ms.
    loop = predicted_loop(300, 3, 20, 1 / 3, 8)
    assert loop == {'sequential': round(24000 / 369, 1), 'overlapped': round(24000 / 349, 1)}
    # An env slower than the update: the update is what hides.
    assert predicted_loop(10, 0, 50, 1, 2)['overlapped'] == round(2000 / 50, 1)
    # Two updates per agent step (a high train_ratio): 5 + 20 + 2 x 100 sequentially; overlapped, the
    # env step hides inside the updates: 5 + max(20, 200).
    assert predicted_loop(100, 5, 20, 2, 2) == {'sequential': round(2000 / 225, 1), 'overlapped': round(2000 / 205, 1)}
