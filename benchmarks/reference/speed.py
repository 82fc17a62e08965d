"""Time the DreamerV2 reference's own Agent.train on a random batch; speed.sh runs this.

    python speed.py SRC_DIR [--repeats N] [--key value ...]

SRC_DIR is the patched dreamerv2/ folder. Config: the reference's `defaults` + `dmc_vision` with
float32 precision (`--precision 32`) in graph mode (`--jit True`, which in this code base means
tf.function, not XLA); any reference flag overrides it, e.g. `--rssm.deter 128` or `--precision 16`.
Prints one JSON line: compile seconds of the first call and the median seconds of the next N calls.
"""
import json
import os
import pathlib
import resource
import sys
import time

import numpy as np


def cpu_info():
    text = pathlib.Path('/proc/cpuinfo').read_text()
    model = next((l.split(':', 1)[1].strip() for l in text.splitlines() if l.startswith('model name')), '')
    flags = next((l.split(':', 1)[1].split() for l in text.splitlines() if l.startswith('flags')), [])
    wanted = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16')
    return {'model': model, 'cores': os.cpu_count(), 'flags': [f for f in wanted if f in flags]}


def main():
    src, args = pathlib.Path(sys.argv[1]), sys.argv[2:]
    out, sys.stdout = sys.stdout, sys.stderr  # The reference's prints go to stderr; stdout gets the JSON.
    repeats = 5
    if '--repeats' in args:
        i = args.index('--repeats')
        repeats = int(args[i + 1])
        args = args[:i] + args[i + 2:]
    sys.path.insert(0, str(src))  # Its `common`, not the project's.
    import ruamel.yaml as yaml
    import common

    # The same two-stage parse as the reference's train.py; later flags win.
    argv = ['--configs', 'defaults', 'dmc_vision', '--precision', '32', '--jit', 'True'] + args
    configs = yaml.YAML(typ='safe').load((src / 'configs.yaml').read_text())
    parsed, remaining = common.Flags(configs=['defaults']).parse(argv, known_only=True)
    config = common.Config(configs['defaults'])
    for name in parsed.configs:
        config = config.update(configs[name])
    config = common.Flags(config).parse(remaining)

    import tensorflow as tf
    from tensorflow.keras import mixed_precision as prec
    tf.config.experimental_run_functions_eagerly(not config.jit)
    if config.precision == 16:
        prec.set_global_policy(prec.Policy('mixed_float16'))
    import agent
    from dm_control import suite
    from gymnasium.spaces import Box

    domain, task = config.task.split('_', 1)[1].split('_', 1)
    domain = {'cup': 'ball_in_cup'}.get(domain, domain)  # As the reference's DMC wrapper does.
    act_dim = suite.load(domain, task).action_spec().shape[0]  # No rendering needed.
    size = tuple(config.render_size)
    obs_space = {  # What the reference's DMC wrapper declares, less the unused proprio keys.
        'image': Box(0, 255, size + (3,), np.uint8), 'reward': Box(-np.inf, np.inf, (), np.float32),
        'is_first': Box(0, 1, (), bool), 'is_last': Box(0, 1, (), bool), 'is_terminal': Box(0, 1, (), bool)}
    act_space = {'action': Box(-1, 1, (act_dim,), np.float32)}
    b, t = config.dataset.batch, config.dataset.length
    rng = np.random.default_rng(0)
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = True
    data = {
        'image': rng.integers(0, 256, (b, t) + size + (3,), dtype=np.uint8),
        'action': rng.uniform(-1, 1, (b, t, act_dim)).astype(np.float32),
        'reward': rng.normal(size=(b, t)).astype(np.float32),
        'is_first': is_first, 'is_last': np.zeros((b, t), bool), 'is_terminal': np.zeros((b, t), bool)}
    data = {k: tf.constant(v) for k, v in data.items()}

    agnt = agent.Agent(config, obs_space, act_space, common.Counter(0))

    def step():
        _, metrics = agnt.train(data)
        return {k: float(v) for k, v in metrics.items()}  # Waits for the whole step.

    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        metrics = step()
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(json.dumps({
        'reference': 'dreamerv2==2.2.0', 'argv': args, 'task': config.task,
        'precision': {16: 'mixed_float16', 32: 'float32'}[config.precision], 'graph_mode': config.jit,
        'sizes': {
            'batch': [b, t], 'deter': config.rssm.deter, 'hidden': config.rssm.hidden,
            'stoch': config.rssm.stoch, 'discrete': config.rssm.discrete,
            'cnn_depth': config.encoder.cnn_depth, 'mlp': [config.actor.layers, config.actor.units],
            'imag_horizon': config.imag_horizon},
        'compile_s': round(compile_s, 2), 'train_step_s': round(median, 3),
        'train_step_s_all': [round(x, 3) for x in times], 'updates_per_s': round(1 / median, 3),
        'model_loss': round(metrics['model_loss'], 2),
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        'threads': {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS')},
        'cpu': cpu_info()}), file=out)
    out.flush()
    sys.stderr.flush()
    os._exit(0)  # A normal exit aborts in Mesa's teardown (loaded by dm_control), see learn.sh.


if __name__ == '__main__':
    main()
