import json
import subprocess
import sys
from pathlib import Path

import pytest

from common import config as config_lib

ROOT = Path(__file__).resolve().parent.parent


def test_named_blocks_merge_in_order_then_flags():
    config = config_lib.load(['--configs', 'dmc', 'small', '--rssm.deter', '512', '--logdir', '/tmp/run'])
    assert config.rssm.deter == 512          # flag beats both blocks
    assert config.rssm.hidden == 128         # small (later block) beats dmc's default
    assert config.model_opt.lr == 3e-4       # set by dmc, untouched by small
    assert config.task == 'dmc_cartpole_balance'
    assert config.logdir == '/tmp/run'
    reordered = config_lib.load(['--configs', 'small', 'dmc'])
    assert reordered.task == 'dmc_walker_walk'


def test_flag_types_are_converted():
    config = config_lib.load(['--jit', 'false', '--kl.free', '1', '--steps', '1e4', '--env.size', '64,64'])
    assert config.jit is False and config.kl.free == 1.0 and config.steps == 10000
    assert tuple(config.env.size) == (64, 64)


@pytest.mark.parametrize('argv, fragment', [
    (['--rssm.detr', '5'], "unknown flag '--rssm.detr'; did you mean rssm.deter"),
    (['--rssm.deter', 'abc'], "Expected int but got 'abc' for key 'rssm.deter'"),
    (['--configs', 'nope'], "unknown named config 'nope'; allowed: dmc, small, state, bringbackshapes, bbs_small, debug, vsg, svsg, slot, offline, offline_debug"),
    (['--precision', 'fp8'], 'choose one of float32, mixed_float16, mixed_bfloat16'),
    (['--batch_size', '0'], 'batch_size=0 must be a positive integer'),
    (['--discount', '1.5'], 'discount=1.5 must lie in [0, 1]'),
    (['--status_every', '-1'], 'status_every=-1 must be 0 or more'),
    (['--env.dmc.obs', 'rgb'], "env.dmc.obs='rgb' is not allowed; choose one of pixels, state, both"),
    (['--loss_scales.a.b', '2'], "unknown flag '--loss_scales.a.b'"),
])
def test_bad_input_is_one_line_naming_the_problem(argv, fragment):
    with pytest.raises(config_lib.ConfigError) as info:
        config_lib.load(argv)
    message = str(info.value)
    assert fragment in message
    assert '\n' not in message


def test_named_block_with_unknown_key_is_rejected(tmp_path):
    path = tmp_path / 'configs.yaml'
    path.write_text('defaults: {a: 1, b: {c: 2.0}}\nbroken: {b.d: 3}\n')
    with pytest.raises(config_lib.ConfigError, match="named config 'broken' sets unknown key 'b.d'"):
        config_lib.load(['--configs', 'broken'], path)


def test_named_block_merges_its_included_configs_first(tmp_path):
    blocks = {'defaults': config_lib.read_blocks()['defaults'],
              'one': {'seed': 2, 'steps': 2}, 'two': {'steps': 3},
              'both': {'configs': ['one', 'two'], 'batch_size': 4},
              'loop': {'configs': ['knot']}, 'knot': {'configs': ['loop']}, 'bare': {'configs': 'one'}}
    path = tmp_path / 'configs.yaml'
    path.write_text(json.dumps(blocks))  # JSON is YAML
    config = config_lib.load(['--configs', 'both', '--seed', '5'], path)
    assert (config.seed, config.steps, config.batch_size) == (5, 3, 4)  # one, two over it, the block, then flags
    with pytest.raises(config_lib.ConfigError, match="'loop' includes itself via loop -> knot -> loop"):
        config_lib.load(['--configs', 'loop'], path)
    with pytest.raises(config_lib.ConfigError, match="'bare' sets configs: 'one'; it must be a list"):
        config_lib.load(['--configs', 'bare'], path)


def test_cpu_config_is_small_v3_at_repeat_2_with_image_weight_4():
    cpu = config_lib.load(['--configs', 'dmc', 'cpu'])
    spelled_out = config_lib.load(['--configs', 'dmc', 'small', 'v3', '--env.action_repeat', '2', '--env.size', '32,32',
                                   '--decoder.resolution', '32', '--rssm.discrete', '0', '--loss_scales.image', '4',
                                   '--train_ratio', '160',
                                   '--precision', 'auto', '--steps', '60000', '--eval_every', '2500', '--eval_eps', '5',
                                   '--log_every', '1000', '--save_every', '5000'])
    assert dict(cpu.flat) == dict(spelled_out.flat)


def test_every_named_config_is_valid():
    for name in config_lib.read_blocks():
        if name != 'defaults':
            config_lib.load(['--configs', name])


def help_lines(argv):
    with pytest.raises(config_lib.HelpRequested) as info:
        config_lib.load(argv)
    return str(info.value).splitlines()


def key_line(lines, key):
    return next(line for line in lines if line.split()[:1] == [f'--{key}'])


@pytest.mark.parametrize('argv', [['vsg.train', '--help'], ['vsg.train', '-h'], ['vsg.bench', '--configs', 'dmc', '--help']])
def test_help_prints_and_exits_zero_from_the_command_line(argv):
    result = subprocess.run([sys.executable, '-m', *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'Named configs' in result.stdout and '--rssm.deter 200' in result.stdout
    assert 'error' not in result.stderr


def test_help_lists_named_configs_keys_grouped_and_allowed_values():
    lines = help_lines(['--help'])
    assert any(line.split()[:2] == ['dmc', "DreamerV2's"] for line in lines)  # with its comment
    assert {'small', 'debug', 'vsg', 'svsg'} <= {line.split()[0] for line in lines if line.startswith('  ') and line.split()}
    assert key_line(lines, 'rssm.deter').split()[:2] == ['--rssm.deter', '200']
    at = lines.index(key_line(lines, 'precision'))   # A long line wraps onto the next.
    assert ' '.join(' '.join(lines[at:at + 2]).split()).endswith('must be one of float32, mixed_float16, mixed_bfloat16, auto')
    assert 'must lie in (0, 1)' in key_line(lines, 'gate.prior')
    assert 'must be a positive integer' in key_line(lines, 'steps')
    assert 'seconds between progress lines' in key_line(lines, 'status_every')  # the key's comment in configs.yaml
    rssm = [i for i, line in enumerate(lines) if line.strip().startswith('--rssm.')]
    assert rssm == list(range(rssm[0], rssm[0] + 6)) and lines[rssm[0] - 1] == ''  # one block, set apart


def test_help_shows_values_merged_by_named_configs_and_ignores_other_flags():
    lines = help_lines(['--configs', 'dmc', 'small', '--rssm.detr', '1', '-h'])
    assert 'defaults + dmc + small' in '\n'.join(lines)
    assert key_line(lines, 'rssm.deter').split()[:2] == ['--rssm.deter', '128']
    assert key_line(lines, 'task').split()[:2] == ['--task', 'dmc_cartpole_balance']
    assert key_line(lines, 'model_opt.lr').split()[:2] == ['--model_opt.lr', '0.0003']


def save_run_config(logdir, **changes):
    """A run directory whose config.yaml is today's defaults with `changes` (None deletes a key)."""
    import elements
    flat = dict(elements.Config(config_lib.read_blocks()['defaults']).flat)
    for key, value in changes.items():
        if value is None:
            del flat[key]
        else:
            flat[key] = value
    logdir.mkdir()
    elements.Config(flat).save(logdir / 'config.yaml')
    return logdir


def test_a_run_saved_before_a_key_existed_loads_with_that_key_defaulted(tmp_path):
    # prioritize_ends came after the first runs; env.camera became env.dmc.camera.
    logdir = save_run_config(tmp_path / 'old', **{
        'replay.prioritize_ends': None, 'env.dmc.camera': None, 'env.camera': 2, 'seed': 7})
    config = config_lib.load_run(logdir)
    assert config.replay.prioritize_ends is False and config.env.dmc.camera == 2 and config.seed == 7


def test_train_ratio_counts_replayed_steps_and_the_old_train_every_converts(capsys):
    small = config_lib.load(['--configs', 'dmc', 'small'])  # 8x32 every 3 agent steps
    assert small.train_ratio == pytest.approx(8 * 32 / 3)
    assert capsys.readouterr().err == ''
    # Two updates of 8x32 every agent step, said the old way: the same schedule, one line of warning.
    old = config_lib.load(['--configs', 'dmc', 'small', '--train_every', '1', '--train_steps=2'])
    assert old.train_ratio == pytest.approx(2 * 8 * 32)
    warning = capsys.readouterr().err
    assert warning.count('\n') == 1 and '--train_ratio 512' in warning
    # Only train_steps: that many updates where the ratio put one.
    assert config_lib.load(['--configs', 'dmc', 'small', '--train_steps', '3']).train_ratio == pytest.approx(256)


@pytest.mark.parametrize('argv, fragment', [
    (['--train_ratio', '0'], 'train_ratio=0.0 must be above 0'),
    (['--train_ratio', '-2'], 'train_ratio=-2.0 must be above 0'),
    (['--train_ratio', '64', '--train_every', '2'], 'not both'),
    (['--train_every', '0'], "train_every='0' must be a positive integer"),
])
def test_bad_train_schedules_are_one_line(argv, fragment):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load(argv)
    assert fragment in str(error.value) and '\n' not in str(error.value)


def test_a_run_saved_with_train_every_loads_with_the_same_train_ratio(tmp_path):
    logdir = save_run_config(tmp_path / 'old', **{'train_ratio': None, 'train_every': 5, 'train_steps': 2,
                                                  'batch_size': 16, 'batch_length': 50})
    assert config_lib.load_run(logdir).train_ratio == pytest.approx(2 * 16 * 50 / 5)


@pytest.mark.parametrize('content, fragment', [
    (None, "unknown key 'no_such_key'"),
    ('seed: [1, 2\n', 'cannot read'),
])
def test_a_bad_saved_run_config_is_one_line(tmp_path, content, fragment):
    logdir = save_run_config(tmp_path / 'bad', no_such_key=1)
    if content is not None:
        (logdir / 'config.yaml').write_text(content)
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load_run(logdir)
    assert fragment in str(error.value) and '\n' not in str(error.value)
