"""CPU flags and the precision `precision: auto` picks from them."""
import pytest

from common import machine
from vsg import train


def test_cpu_info_reads_the_model_and_the_flags_that_matter(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 fma avx512f amx_bf16 amx_tile\n'
                       'processor\t: 1\nmodel name\t: Some Xeon\nflags\t\t: fpu\n')
    info = machine.cpu_info(cpuinfo)
    assert info['model'] == 'Some Xeon' and info['flags'] == ['avx2', 'fma', 'avx512f', 'amx_bf16']
    assert machine.cpu_info(tmp_path / 'missing')['flags'] == []


@pytest.mark.parametrize('flags, precision', [
    (['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16'], 'mixed_bfloat16'),   # Intel Xeon with AMX
    (['avx2', 'fma', 'avx512f', 'avx512_bf16'], 'float32'),                      # AMD EPYC, measured slower in bf16
    (['avx2', 'fma'], 'float32'),
    ([], 'float32'),
])
def test_auto_precision_takes_bfloat16_only_with_amx(flags, precision):
    assert machine.auto_precision(flags) == precision


def test_auto_is_resolved_when_parsing_so_the_saved_config_records_what_ran(capsys):
    config = train.parse(['--configs', 'debug', '--precision', 'auto'], need_logdir=False)
    assert config.precision == machine.auto_precision(machine.cpu_info()['flags'])
    assert f'precision auto: {config.precision}' in capsys.readouterr().out
    assert train.parse(['--configs', 'debug'], need_logdir=False).precision == 'float32'   # the default
