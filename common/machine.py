"""What this machine's CPU offers, and the compute precision that is fastest on it.

Measured (docs/results/benchmarks.md): bfloat16 pays where the CPU has bfloat16 units. With AMX-BF16 tiles
(Intel Xeon) the `dmc` step is 1.76x faster than in float32; with AVX512-BF16 (AMD EPYC, 2026-11-26)
1.46x (`dmc`) and 1.3x (`dmc small`). With AVX2 alone oneDNN emulates bfloat16 and the step is 8x
slower: float32 there. bfloat16 learns as float32 does on `dmc small` cartpole (docs/results/cartpole.md).
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


def gpu_capability():
    """The first visible GPU's CUDA compute capability as (major, minor), or None without a GPU."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices('GPU')
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get('compute_capability')


def auto_precision(flags, gpu=None):
    """The precision `precision: auto` stands for on a CPU with these flags, or on a GPU of compute
    capability `gpu` (bfloat16 from Ampere, 8.0, on; not measured here: no GPU on these machines)."""
    if gpu is not None:
        return 'mixed_bfloat16' if tuple(gpu) >= (8, 0) else 'float32'
    return 'mixed_bfloat16' if {'amx_bf16', 'avx512_bf16'} & set(flags) else 'float32'
