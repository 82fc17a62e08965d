"""CPU flags and the precision `precision: auto` picks from them."""
import pytest

from common import machine
from vsg import build


def test_cpu_info_reads_the_model_and_the_flags_that_matter(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 fma avx512f amx_bf16 amx_tile\n'
                       'processor\t: 1\nmodel name\t: Some Xeon\nflags\t\t: fpu\n')
    info = machine.cpu_info(cpuinfo)
    assert info['model'] == 'Some Xeon' and info['flags'] == ['avx2', 'fma', 'avx512f', 'amx_bf16']
    assert machine.cpu_info(tmp_path / 'missing')['flags'] == []


@pytest.mark.parametrize('flags, precision', [
    (['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16'], 'mixed_bfloat16'),   # Intel Xeon with AMX
    (['avx2', 'fma', 'avx512f', 'avx512_bf16'], 'mixed_bfloat16'),               # AMD EPYC with AVX512-BF16
    (['avx2', 'fma'], 'float32'),
    ([], 'float32'),
])
def test_auto_precision_takes_bfloat16_only_with_bfloat16_units(flags, precision):
    assert machine.auto_precision(flags) == precision


def test_auto_precision_on_a_gpu_follows_its_compute_capability_not_the_cpu():
    assert machine.auto_precision(['avx2'], gpu=(8, 0)) == 'mixed_bfloat16'
    assert machine.auto_precision(['avx512_bf16'], gpu=(7, 5)) == 'float32'


def test_auto_is_resolved_when_parsing_so_the_saved_config_records_what_ran(capsys):
    config = build.parse(['--configs', 'debug', '--precision', 'auto'], need_logdir=False)
    assert config.precision == machine.auto_precision(machine.cpu_info()['flags'], machine.gpu_capability())
    assert f'precision auto: {config.precision}' in capsys.readouterr().out
    # The default is auto; the debug config (the tests') pins float32 so tests see one precision on every CPU.
    default = build.parse([], need_logdir=False)
    assert default.precision == machine.auto_precision(machine.cpu_info()['flags'], machine.gpu_capability())
    assert build.parse(['--configs', 'debug'], need_logdir=False).precision == 'float32'
