import pytest

from common import config as config_lib


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
    (['--configs', 'nope'], "unknown named config 'nope'; allowed: dmc, small, debug"),
    (['--precision', 'fp8'], 'choose one of float32, mixed_float16, mixed_bfloat16'),
    (['--batch_size', '0'], 'batch_size=0 must be a positive integer'),
    (['--discount', '1.5'], 'discount=1.5 must lie in [0, 1]'),
    (['--env.size', '32,32'], 'env.size=[32, 32] is not supported'),
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


def test_every_named_config_is_valid():
    for name in config_lib.read_blocks():
        if name != 'defaults':
            config_lib.load(['--configs', name])
