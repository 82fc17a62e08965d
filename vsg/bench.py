"""Benchmark: `python -m vsg.bench --configs dmc [--precision mixed_bfloat16] > bench.json`.

Prints one JSON object: compile seconds of the first train step, median train-step ms, updates/s,
policy-step ms, env steps/s (real env + policy), peak RSS, the train step's estimated FLOPs and
achieved GFLOP/s, and this machine's CPU flags with matmul and conv calibrations in float32, bfloat16
and float16 measured in the same process; `achieved_fraction_of_matmul` divides the achieved rate by
the matmul rate of the precision in use, so figures from different machines compare as fractions of
each machine's peak. `loop_env_frames_per_s` predicts vsg.train's env frames/s from these parts.
`--profile` adds `profile_ms`: the time of each part of the train step (vsg/profile.py). Takes the
same `--configs` and `--key value` flags as vsg.train (no logdir needed).

`--slots` times the slot model's train step instead (vsg/slots; `python -m vsg.bench --slots --configs
slots [--slots.KEY VALUE ...]`): compile seconds, median ms per update and per frame (batch_size x
window frames an update), its FLOPs and the same CPU calibration.
"""
import json
import resource
import sys
import time

import numpy as np

from common.machine import cpu_info
from vsg import build


def _times_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return times


def _median_ms(fn, repeats):
    return float(np.median(_times_ms(fn, repeats)))


def _best_ms(fn, repeats):
    return min(_times_ms(fn, repeats))


PRECISION_DTYPES = {'float32': 'float32', 'mixed_bfloat16': 'bfloat16', 'mixed_float16': 'float16'}


def calibrate(repeats=10):
    """Peak GFLOP/s (best of `repeats`: other load only ever slows a run down) of a 1024^3 matmul and of a
    DreamerV2-encoder-sized convolution, in float32, bfloat16 and float16 (the compute types of the
    three precisions)."""
    import tensorflow as tf
    conv_flops = 2 * 256 * 14 * 14 * 96 * 4 * 4 * 48
    rates = {}
    for dtype in PRECISION_DTYPES.values():
        a = tf.cast(tf.random.normal([1024, 1024]), dtype)
        image = tf.cast(tf.random.normal([256, 31, 31, 48]), dtype)
        kernel = tf.cast(tf.random.normal([4, 4, 48, 96]), dtype)
        matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, a), tf.float32)))
        conv = tf.function(lambda: tf.reduce_sum(tf.cast(tf.nn.conv2d(image, kernel, 2, 'VALID'), tf.float32)))
        matmul(), conv()
        rates[dtype] = {
            'matmul_gflops': round(2 * 1024 ** 3 / _best_ms(lambda: matmul().numpy(), repeats) / 1e6, 1),
            'conv_gflops': round(conv_flops / _best_ms(lambda: conv().numpy(), repeats) / 1e6, 1)}
    return rates


def graph_flops(concrete):
    from tensorflow.python.profiler import model_analyzer, option_builder
    options = option_builder.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    return model_analyzer.profile(concrete.graph, options=options).total_float_ops


def estimate_train_flops(agent, batch):
    """FLOPs of one train step: TF's op statistics for the graph outside loops (convs, heads and
    their gradients, exact), plus the scan bodies (RSSM steps, imagination) counted once and
    multiplied by their trip count and by 3 for forward plus backward, as the profiler does not
    enter loop bodies."""
    import tensorflow as tf
    config = agent.config
    wm, ac = agent.wm, agent.ac
    outer = graph_flops(tf.function(agent._train).get_concrete_function(batch))
    b, t = config.batch_size, config.batch_length
    state = wm.core.initial(b)
    embed = wm.encoder({key: value[:, 0] for key, value in batch.items()})
    action = batch['action'][:, 0]
    obs_step = tf.function(lambda s, a, e, f: wm.core.obs_step(s, a, e, f)).get_concrete_function(
        state, action, embed, batch['is_first'][:, 0])
    start = wm.core.initial(b * t)

    def imagine_step(state):
        feat = wm.core.get_feat(state)
        act = ac.policy(feat).sample(seed=tf.constant([0, 0]))
        return wm.core.img_step(state, act)

    img = tf.function(imagine_step).get_concrete_function(start)
    loops = t * graph_flops(obs_step) + config.imag_horizon * graph_flops(img)
    return outer + 3 * loops


def predicted_loop(train_ms, policy_ms, env_ms, updates_per_step, action_repeat):
    """Env frames/s that vsg.train's loop should reach from the measured parts (`train_ms` per update):
    every agent step runs the policy and the env, and the updates that fell due. `sequential` trains
    after the env step; `overlapped` trains while the env worker steps (vsg.train's loop), so a step
    takes the longer of the env and its updates."""
    sequential = policy_ms + env_ms + updates_per_step * train_ms
    if updates_per_step <= 1:  # an update on some steps, hidden behind that step's env time
        overlapped = policy_ms + env_ms + updates_per_step * max(0.0, train_ms - env_ms)
    else:
        overlapped = policy_ms + max(env_ms, updates_per_step * train_ms)
    frames = 1000 * action_repeat
    return {'sequential': round(frames / sequential, 1), 'overlapped': round(frames / overlapped, 1)}


def train_step_ms(step):
    """(seconds of the first call, which compiles; median ms of the later ones). Short steps vary more
    from one to the next: ~5 s of them, at least 5 and at most 50."""
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    return compile_s, _median_ms(step, min(50, max(5, int(5000 / _median_ms(step, 1)))))


def machine_fields(flops, train_ms, precision):
    """Peak RSS, the step's GFLOP and achieved rate, this CPU and its calibration, and the achieved
    rate as a fraction of the matmul rate of the compute type in use (so machines compare)."""
    result = {
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        'train_step_gflop': round(flops / 1e9, 2),
        'achieved_gflops': round(flops / 1e9 / (train_ms / 1000), 1),
        'cpu': cpu_info(),
        'calibration': calibrate(),
    }
    peak = result['calibration'][PRECISION_DTYPES[precision]]['matmul_gflops']
    result['achieved_fraction_of_matmul'] = round(result['achieved_gflops'] / peak, 3)
    return result


def slots_main(argv):
    """The slot model's train step at the config's sizes on random frames (always float32)."""
    from vsg.slots import settings
    config = settings.parse(argv, required=())
    import tensorflow as tf
    from vsg.slots import train
    cfg = config.slots
    sizes = settings.SlotConfig.of(cfg)
    model = train.build(sizes, config.seed)
    update = train.make_update(model, train.optimizer(cfg))
    shape = (cfg.batch_size, cfg.window, sizes.resolution, sizes.resolution, 3)
    frames = tf.constant(np.random.default_rng(config.seed).integers(0, 256, shape, np.uint8))
    compile_s, train_ms = train_step_ms(lambda: update((frames,))['slots_opt_loss'].numpy())

    def loss_and_gradients(frames):
        with tf.GradientTape() as tape:
            loss, _ = model.loss(frames)
        return tape.gradient(loss, model.trainable_variables)
    # The update's arithmetic (every loop is unrolled, so the profiler sees it all) but Adam's, which is small.
    flops = graph_flops(tf.function(loss_and_gradients).get_concrete_function(frames))
    result = {
        'argv': argv, 'model': 'slots', 'precision': 'float32', 'sizes': sizes.as_dict(),
        'batch': [cfg.batch_size, cfg.window],
        'compile_s': round(compile_s, 2),
        'train_step_ms': round(train_ms, 1),
        'ms_per_frame': round(train_ms / (cfg.batch_size * cfg.window), 2),
        'updates_per_s': round(1000 / train_ms, 3),
        **machine_fields(flops, train_ms, 'float32'),
    }
    print(json.dumps(result))
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if '--slots' in argv:
        return slots_main([arg for arg in argv if arg != '--slots'])
    with_profile = '--profile' in argv  # Our flag; the rest are vsg.train's.
    config = build.parse([arg for arg in argv if arg != '--profile'], need_logdir=False)
    import tensorflow as tf
    from common import driver as driver_lib
    from vsg.agent import Agent, example_batch

    env = build.make_envs(config, 1, config.seed)[0]
    try:
        agent = Agent(env.obs_space, env.act_space, config)
        rng = np.random.default_rng(config.seed)
        b, t = config.batch_size, config.batch_length
        batch = {key: tf.constant(value) for key, value in example_batch(agent, env.obs_space, [b, t], rng).items()}
        compile_s, train_ms = train_step_ms(lambda: agent.train(batch)['model_opt_loss'].numpy())

        policy = build.agent_policy(agent, 'train', 1)
        obs = env.reset()
        batch_obs = {k: np.asarray(v)[None] for k, v in obs.items()}
        state = None
        _, state = policy(batch_obs, state)
        policy_ms = _median_ms(lambda: policy(batch_obs, state), 50)

        driver = driver_lib.Driver([env])
        driver(policy, steps=5)
        start = time.perf_counter()
        steps, _ = driver(policy, steps=100)
        env_steps_per_s = steps / (time.perf_counter() - start)

        flops = estimate_train_flops(agent, batch)
        if with_profile:  # Last: its optimizer part moves the weights.
            from vsg import profile
            parts_ms = profile.profile(agent, batch, _median_ms)
    finally:
        env.close()
    result = {
        'argv': argv,
        'task': config.task, 'core': config.core, 'precision': config.precision, 'jit': config.jit,
        'sizes': {
            'batch': [b, t], **agent.wm.core.sizes, 'cnn_depth': config.encoder.depth,
            'mlp': [config.actor.layers, config.actor.units], 'imag_horizon': config.imag_horizon},
        'compile_s': round(compile_s, 2),
        'train_step_ms': round(train_ms, 1),
        'updates_per_s': round(1000 / train_ms, 3),
        'policy_step_ms': round(policy_ms, 2),
        'env_steps_per_s': round(env_steps_per_s, 2),
        **machine_fields(flops, train_ms, config.precision),
    }
    result['loop_env_frames_per_s'] = predicted_loop(
        train_ms, policy_ms, 1000 / env_steps_per_s - policy_ms,
        config.train_ratio / (config.batch_size * config.batch_length), config.env.action_repeat)
    if with_profile:
        result['profile_ms'] = parts_ms
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
