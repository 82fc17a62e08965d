"""Online training: `python -m vsg.train --configs dmc --task dmc_walker_walk --logdir DIR`.

Re-running the same command on the same logdir resumes from its checkpoint, step counter and replay.
"""
import pathlib
import signal
import sys
import time

import numpy as np

from common import driver as driver_lib
from common import logger as logger_lib
from common import video
from vsg import build, collect


def main(argv=None):
    config = build.parse(sys.argv[1:] if argv is None else argv)
    run(config)


def run(config):
    import elements
    from common import checkpoint
    from common.replay import Replay

    learner = build.make_learner(config)  # first: a strategy sets up devices and collectives before any op
    chief = learner.is_chief  # only the chief writes: checkpoints, logs, videos, replay
    # Workers step envs of their own seeds; the chief's are the single process's.
    seed = config.seed + 1000 * learner.worker
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops a run as Ctrl-C does, saving first.

    logdir = pathlib.Path(config.logdir).expanduser()
    problem = build.check_logdir(config, logdir)  # before anything in it is written
    if problem:
        sys.exit(f'error: {problem}')
    if chief:
        logdir.mkdir(parents=True, exist_ok=True)
        config.save(logdir / 'config.yaml')
    np_rng = np.random.default_rng(seed)

    train_envs = build.make_envs(config, config.env.amount, seed)
    eval_envs = build.make_envs(config, 1, config.seed + 10_000)
    # Once, before the first checkpoint: a resumed run has its copies (and needs not the source any more).
    if chief and config.prefill_from and not (logdir / build.CHECKPOINT).exists():
        copied = collect.seed_replay(config, train_envs[0], logdir / 'replay')
        if copied:
            print(f'Copied {copied} episode files from {config.prefill_from} into the replay (prefill_from).')
    if chief:
        replay = build.load_replay(config, logdir / 'replay')
    else:  # its own episodes, in memory
        replay = Replay(None, capacity=config.replay.capacity, seed=seed, prioritize_ends=config.replay.prioritize_ends)
    # Every worker restores the chief's checkpoint.
    agent, counters = build.make_agent(config, train_envs[0], logdir, learner)
    step = elements.Counter(counters.get('step', 0))
    run_clock = logger_lib.RunClock(counters.get('seconds', 0))  # the run's wall time, saved with the step
    try:
        if counters and logger_lib.convert_to_frames(logdir, config.env.action_repeat):
            print(f'Converted {logdir / logger_lib.METRICS} from agent steps to env frames.')
    except ValueError as e:  # A corrupt metrics.jsonl: say so, touch nothing.
        sys.exit(f'error: {e}')
    logger = logger_lib.make(logdir, step, config.env.action_repeat, files=chief)
    means = logger_lib.Mean()

    def counts():  # for throughput and progress
        return int(step), int(agent.updates.numpy())

    log_rates = logger_lib.Rates(counts)
    status = logger_lib.Status(config.status_every, config.steps, config.env.action_repeat, counts)

    def save():
        if not chief:
            return
        counters = {'step': int(step), 'seconds': int(run_clock())}
        checkpoint.save(logdir / build.CHECKPOINT, agent.variables, counters, keep=config.keep_checkpoints)

    eval_means = logger_lib.Mean()  # An eval point is the mean over its `eval_eps` episodes.
    frames = video.frames_key(eval_envs[0].obs_space)  # None when the agent sees no image

    def log_episode(episode, worker, mode):
        stats = {'return': float(episode['reward'].sum()), 'length': len(episode['reward']) - 1}
        if mode == 'train':
            logger.add(stats, prefix='train')
            return
        eval_means.add(stats, prefix='eval')
        if worker == 0 and frames is not None and chief:
            logger.add({'policy': episode[frames]}, prefix='eval_video')

    def count_step(tran, worker):
        step.increment()
        status.maybe_print()

    train_driver = driver_lib.Driver(train_envs)
    train_driver.on_step(lambda tran, worker: replay.add_step(tran, worker))
    train_driver.on_step(count_step)
    train_driver.on_episode(lambda ep, worker: log_episode(ep, worker, 'train'))
    eval_driver = driver_lib.Driver(eval_envs)
    eval_driver.on_step(lambda tran, worker: status.maybe_print())
    eval_driver.on_episode(lambda ep, worker: log_episode(ep, worker, 'eval'))

    prefill = max(0, config.prefill - replay.num_steps)
    # Training samples finished episodes, so the prefill runs on until there is one, however long.
    prefill_episodes = int(replay.num_episodes == 0)
    if prefill or prefill_episodes:
        print(f'Prefilling replay with {prefill} random steps' + (' and at least one whole episode.' if prefill_episodes else '.'))
        status.phase = 'prefill'
        random_policy = driver_lib.random_policy(train_envs[0].act_space['action'], np_rng)
        train_driver(random_policy, steps=prefill, episodes=prefill_episodes)
        train_driver.reset()
    # Workers count on from the chief's step, so that they train, evaluate and stop at the same steps.
    step.value = learner.from_chief([int(step)])[0]
    dataset = iter(learner.dataset(
        lambda batch: replay.dataset(batch, config.batch_length, config.replay.prefetch), config.batch_size))

    last_batch = []  # the latest batch trained on, for the open-loop video

    def train_step():
        last_batch[:] = [next(dataset)]
        metrics = {k: v.numpy() for k, v in agent.train(last_batch[0]).items()}
        bad = [k for k, v in metrics.items() if not np.all(np.isfinite(v))]
        if bad:  # Stop before a save can overwrite the last good checkpoint.
            sys.exit(f'error: non-finite {", ".join(bad)} at step {int(step)}; the last checkpoint is kept')
        means.add(metrics, prefix='train')

    if not counters:
        print(f'Pretraining for {config.pretrain} updates.')
        status.phase = 'pretrain'
        start = time.monotonic()
        for i in range(config.pretrain):
            train_step()
            if i == 0:
                print(f'First update done in {time.monotonic() - start:.0f} s (compiling included).', flush=True)
            status.maybe_print()
        save()

    # Updates per agent step; every update due since the last batch step runs, so several envs
    # stepping at once (env.amount) keep the ratio. Each worker counts its own steps, a share of all.
    should_train = elements.when.Ratio(config.train_ratio * learner.workers / (config.batch_size * config.batch_length))
    should_log = elements.when.Every(config.log_every)
    should_save = elements.when.Every(config.save_every)
    save_clock = elements.when.Clock(60 * config.save_every_minutes or -1, first=False)  # -1: never
    should_eval = elements.when.Every(config.eval_every)

    def train_while_envs_step():
        # Called after the actions are sent: the updates run while the env workers simulate and render.
        for _ in range(should_train(step)):
            train_step()

    def on_step(tran, worker):
        if should_log(step) and chief:
            replay.refresh()  # episodes that other processes wrote into the replay directory
            write_logs()
        if should_save(step) or save_clock():
            save()

    def write_logs():
        steps, updates, steps_per_s, updates_per_s = log_rates()
        logger.add(means.result())
        if agent.video_prediction is not None and last_batch:  # none yet right after a resume
            # Not a batch of its own: under multi_worker, drawing one is a collective the other workers skip.
            logger.add({'open_loop': agent.video_prediction(learner.local(last_batch[0])).numpy()}, prefix='train_video')
        logger.add({
            'env_frames_per_s': steps_per_s * config.env.action_repeat, 'updates_per_s': updates_per_s,
            'updates': updates, 'agent_steps': steps,
            'replay_steps': replay.num_steps, 'replay_episodes': replay.num_episodes}, prefix='stats')
        logger.add({logger_lib.WALL_HOURS: run_clock() / 3600})
        logger.write()

    train_driver.on_wait(train_while_envs_step)
    train_driver.on_step(on_step)
    train_policy = build.agent_policy(agent, 'train', len(train_envs))
    eval_policy = build.agent_policy(agent, 'eval', len(eval_envs))
    try:
        while step < config.steps:
            if should_eval(step) and chief:
                status.phase = 'eval'
                eval_driver.reset()
                eval_driver(eval_policy, episodes=config.eval_eps)
                result = eval_means.result()
                status.eval_return = result['eval/return']
                logger.add({**result, logger_lib.AGENT_STEPS: int(step), logger_lib.WALL_HOURS: run_clock() / 3600})
                logger.write()
            status.phase = 'train'
            train_driver(train_policy, steps=min(config.eval_every, config.steps - int(step)))
        if chief:
            write_logs()
        save()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the progress made since the last save.
        if not chief:
            sys.exit(f'Interrupted at agent step {int(step)}; the chief saves.')
        if int(agent.updates.numpy()) == 0:  # Still prefilling: a rerun starts over from the replay.
            sys.exit(f'Interrupted at agent step {int(step)}, before training began; nothing saved.')
        # The stop may land between an update and its non-finite check: never save over good weights then.
        arrays = [np.asarray(variable) for variable in agent.variables]
        if not all(np.isfinite(a).all() for a in arrays if np.issubdtype(a.dtype, np.floating)):
            sys.exit(f'error: interrupted with non-finite weights; {logdir / build.CHECKPOINT} is kept as it was')
        save()
        sys.exit(f'Interrupted: saved {logdir / build.CHECKPOINT} at agent step {int(step)}; '
                 f'the same command resumes from there.')
    finally:
        for env in train_envs + eval_envs:
            env.close()
        logger.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == '__main__':
    main()
