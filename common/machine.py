"""What this machine's CPU offers, and the compute precision that is fastest on it.

Measured (README, Benchmark): bfloat16 pays only where the CPU has AMX-BF16 tiles (Intel Xeon,
`dmc` step 1.76x faster than float32). With AVX512-BF16 alone (AMD EPYC) the bfloat16 kernels are
faster but the whole step is slower (casts and ops without bfloat16 kernels), and with AVX2 alone it
is 8x slower; float32 there.
"""
import os
import pathlib

FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16')


def cpu_info(cpuinfo='/proc/cpuinfo'):
    """{'model', 'cores', 'flags'}: the CPU model and which of FLAGS it has."""
    path = pathlib.Path(cpuinfo)
    text = path.read_text() if path.exists() else ''
    flags, model = set(), ''
    for line in text.splitlines():
        if line.startswith('flags') and not flags:
            flags = set(line.split(':', 1)[1].split())
        if line.startswith('model name') and not model:
            model = line.split(':', 1)[1].strip()
    return {'model': model, 'cores': os.cpu_count(), 'flags': [flag for flag in FLAGS if flag in flags]}


def auto_precision(flags):
    """The precision `precision: auto` stands for on a CPU with these flags."""
    return 'mixed_bfloat16' if 'amx_bf16' in flags else 'float32'
