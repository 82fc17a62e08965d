"""Collect episodes into a replay-format directory, the input of the offline mode (vsg.offline).

  python -m vsg.collect --task bbs_dense --policy expert --noise 0.3 --episodes 60 --outdir DIR --seed 0 \\
      --workers 2 --env.action_repeat 4 --env.time_limit 400 --env.bbs.max_objects 1

--policy random: uniform actions; expert: the suite's scripted expert (`expert_action()`: bbs,
fetch and grid have one); checkpoint:LOGDIR: a trained agent (LOGDIR's config.yaml and
checkpoint.npz, vsg.train's run directory; one trained on dmc_X also acts in dcs_X and back). --noise EPS replaces each action by a
uniform random one with probability EPS. Episodes are `{timestamp}-{uuid}-{length}.npz` files
holding the obs keys (image, reward, is_first, is_last, is_terminal and the suite's extras) and the
true `action`s. Re-running tops DIR up to --episodes complete files; DIR/dataset.json records the
task, env settings and policy, and a top-up with others is refused. Env settings are the training
config's: --configs NAME ... and --key value (env.size, env.action_repeat, env.time_limit,
env.bbs.*, ...). --workers W runs W processes, each with its own env seeds. Random and expert
collection never imports TensorFlow, so envs render in the collecting processes; a checkpoint policy
steps W envs in spawned workers.
"""
import argparse
import json
import multiprocessing
import pathlib
import sys
import time

import elements
import numpy as np

from common import config as config_lib
from common import episodes as episodes_lib
from common import logger as logger_lib


class _Parser(argparse.ArgumentParser):

    def error(self, message):
        raise UsageError(message)


class UsageError(Exception):
    pass


def _parser():
    parser = _Parser(prog='python -m vsg.collect', allow_abbrev=False, add_help=False)
    parser.add_argument('--policy', default='random')
    parser.add_argument('--episodes', type=int, required=True)
    parser.add_argument('--outdir', required=True)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--noise', type=float, default=0.0)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ('--help', '-h') for arg in argv):
        print(__doc__)
        return 0
    try:
        args, rest = _parser().parse_known_args(argv)
        config = _config(rest)
        _check_args(args)
    except UsageError as e:
        sys.exit(f'error: {e}')
    outdir = pathlib.Path(args.outdir).expanduser()
    if outdir.exists() and not outdir.is_dir():
        sys.exit(f'error: --outdir {outdir} exists and is not a directory')
    checkpoint_dir = _checkpoint_dir(args.policy)
    if checkpoint_dir is None:
        _check_env(config, args.policy)  # in this process: it stays free of TensorFlow
    outdir.mkdir(parents=True, exist_ok=True)
    _record_dataset(outdir, dataset_info(config, args.policy, args.noise))
    done = episodes_lib.count(outdir)
    need = args.episodes - done
    if need <= 0:
        print(f'collect: {outdir} already holds {done} episodes (asked for {args.episodes}); nothing to do.')
        return 0
    print(f'collect: {need} episodes of {config.task} with policy {args.policy}'
          + (f' (noise {args.noise})' if args.noise else '') + f' into {outdir} ({done} there already)', flush=True)
    start = time.monotonic()
    progress = Progress(args.episodes, done, config.status_every)
    if checkpoint_dir is not None:
        _collect_with_agent(config, checkpoint_dir, args, outdir, need, done, progress)
    else:
        _collect_in_workers(config, args, outdir, need, done, progress)
    total = episodes_lib.count(outdir)
    returns = episode_returns(outdir)
    print(f'collect: {total} episodes in {outdir} ({total - done} new in {time.monotonic() - start:.0f} s); '
          f'mean return {np.mean(returns):.3f} ± {np.std(returns):.3f}', flush=True)
    return 0


def _config(argv):
    """The training config from --configs and --key flags (vsg.build.parse without its TensorFlow import)."""
    from common import config as config_lib
    try:
        return config_lib.load(argv)
    except config_lib.HelpRequested as request:
        print(request)
        sys.exit(0)
    except config_lib.ConfigError as e:
        raise UsageError(str(e)) from None


def _check_args(args):
    if args.episodes < 1:
        raise UsageError(f'--episodes={args.episodes} must be at least 1')
    if args.workers < 1:
        raise UsageError(f'--workers={args.workers} must be at least 1')
    if not 0 <= args.noise <= 1:
        raise UsageError(f'--noise={args.noise} must lie in [0, 1]')
    if args.policy not in ('random', 'expert') and not args.policy.startswith('checkpoint:'):
        raise UsageError(f"--policy {args.policy!r} is not allowed; use random, expert or checkpoint:LOGDIR")


def _checkpoint_dir(policy):
    if not policy.startswith('checkpoint:'):
        return None
    logdir = pathlib.Path(policy.partition(':')[2]).expanduser()
    for name in ('config.yaml', 'checkpoint.npz'):
        if not (logdir / name).exists():
            sys.exit(f'error: {logdir / name} does not exist; checkpoint:LOGDIR needs a run directory of vsg.train')
    return logdir


def _check_env(config, policy):
    """Builds one env here, so a bad task or setting (or an expert a suite lacks) is a one-line error."""
    from vsg import build
    env = build.make_envs(_in_process(config), 1, config.seed)[0]
    try:
        if policy == 'expert' and not hasattr(env, 'expert_action'):
            sys.exit(f'error: {config.task} has no scripted expert (bbs, fetch and grid have one); use --policy random or checkpoint:LOGDIR')
    finally:
        env.close()


def _in_process(config):
    return config.update({'env.parallel': False})


def dataset_info(config, policy, noise):
    """What makes the episodes of a directory alike: the task, its env settings and the policy."""
    suite = config.task.partition('_')[0]
    env = {key: value for key, value in config.flat.items()
           if key in ('env.size', 'env.action_repeat', 'env.time_limit') or key.startswith(f'env.{suite}.')}
    return json.loads(json.dumps({'task': config.task, 'env': env, 'policy': policy, 'noise': noise}))


def _read_dataset_info(directory):
    """DIR/dataset.json (or None), its env settings completed with the defaults of settings added to
    configs.yaml after it was written (e.g. env.<suite>.segmentation), so older datasets still match."""
    info = episodes_lib.read_info(directory)
    if info is None:
        return None
    suite = info['task'].partition('_')[0]
    defaults = elements.Config(config_lib.read_blocks()['defaults']).flat
    added = {key: value for key, value in defaults.items() if key.startswith(f'env.{suite}.') and key not in info['env']}
    return {**info, 'env': json.loads(json.dumps({**info['env'], **added}))}


def _record_dataset(outdir, info):
    try:
        old = _read_dataset_info(outdir)
    except episodes_lib.EpisodeError as e:
        sys.exit(f'error: {e}')
    if old is not None and old != info:
        differ = ', '.join(key for key in info if old.get(key) != info[key])
        sys.exit(f'error: {outdir} holds episodes collected with other settings ({differ} differ; '
                 f'see {outdir / episodes_lib.DATASET_FILE}); use another --outdir')
    if old is None:
        episodes_lib.write_info(outdir, info)


def seed_replay(config, env, replay_dir):
    """Copies the episodes of `config.prefill_from` into a run's replay directory (vsg.train).

    Refuses, with one line, a directory without episodes, one collected for another task or env
    settings (its dataset.json), and episodes whose keys or shapes differ from `env`'s. Returns how
    many files were copied: none when a resumed run already holds them all.
    """
    source = pathlib.Path(config.prefill_from).expanduser()
    files = episodes_lib.paths(source)
    if not files:
        sys.exit(f'error: prefill_from {source} holds no episode files (*.npz); give a vsg.collect --outdir or a run\'s replay/')
    try:
        info = _read_dataset_info(source)
        spec = episodes_lib.spec(episodes_lib.read(files[-1], required=()))  # the newest episode's
    except episodes_lib.EpisodeError as e:
        sys.exit(f'error: prefill_from {e}')
    own = dataset_info(config, None, None)
    if info is not None:
        differ = [key for key in ('task', 'env') if info.get(key) != own[key]]
        if differ:
            sys.exit(f'error: prefill_from {source} was collected with {", ".join(f"{key} {info.get(key)}" for key in differ)}, '
                     f'this run has {", ".join(f"{key} {own[key]}" for key in differ)}')
    spaces = {**env.obs_space, 'action': env.act_space['action']}
    expected = {key: tuple(space.shape) for key, space in spaces.items()}
    found = {key: tuple(shape) for key, (_, shape) in spec.items()}
    if found != expected:
        sys.exit(f'error: prefill_from episode {files[-1].name} has keys and shapes {found}; this run\'s env gives {expected}')
    return episodes_lib.copy(source, replay_dir)


def episode_returns(directory):
    returns = []
    for path in episodes_lib.paths(directory):
        try:
            returns.append(float(episodes_lib.read(path, only=('reward',))['reward'].sum()))
        except episodes_lib.EpisodeError:  # a foreign or broken file is the offline loader's to report
            continue
    return returns


class Progress:
    """A progress line with the rate and ETA every `every` seconds, and when the target is reached."""

    def __init__(self, total, done, every, clock=time.monotonic):
        self._total, self._first, self._every, self._clock = total, done, every, clock
        self._start = self._printed = clock()
        self._last = done

    def update(self, done):
        now = self._clock()
        if done == self._last or (done < self._total and (not self._every or now - self._printed < self._every)):
            return
        self._last, self._printed = done, now
        rate = (done - self._first) / max(now - self._start, 1e-9)
        eta = logger_lib.duration((self._total - done) / rate) if rate > 0 else '-'
        print(f'collect: {done}/{self._total} episodes | {rate * 60:.1f} episodes/min | ETA {eta}', flush=True)


def worker_seed(seed, done, worker):
    """Seeds differ between workers and between top-ups of one directory (`done` episodes there)."""
    return int(np.random.SeedSequence([seed, done, worker]).generate_state(1)[0] % 2 ** 31)


def noisy(policy, act_space, noise, rng):
    """`policy` with each env's action replaced by a uniform random one with probability `noise`."""
    from common import driver as driver_lib
    random = driver_lib.random_policy(act_space, rng)

    def act(obs, state):
        actions, state = policy(obs, state)
        actions = np.array(actions, np.float32)
        if noise:
            replace = rng.random(len(actions)) < noise
            actions[replace] = random(obs, None)[0][replace]
        return actions, state
    return act


def _split(need, workers):
    return [need // workers + (i < need % workers) for i in range(min(workers, need))]


def _collect_in_workers(config, args, outdir, need, done, progress):
    jobs = [(config, args.policy, args.noise, str(outdir), count, worker_seed(config.seed, done, i))
            for i, count in enumerate(_split(need, args.workers))]
    if len(jobs) == 1:
        collect_episodes(*jobs[0], on_episode=lambda: progress.update(episodes_lib.count(outdir)))
        return
    from vsg import collect as module  # by its package name, so spawned workers import it, not __main__
    context = multiprocessing.get_context('spawn')
    workers = [context.Process(target=module.collect_episodes, args=job, daemon=True) for job in jobs]
    for worker in workers:
        worker.start()
    try:
        while any(worker.is_alive() for worker in workers):
            failed = [i for i, worker in enumerate(workers) if worker.exitcode not in (None, 0)]
            if failed:
                sys.exit(f'error: collect worker {failed[0]} failed (exit code {workers[failed[0]].exitcode}); '
                         f'its message is above; the {episodes_lib.count(outdir)} complete episodes are kept')
            progress.update(episodes_lib.count(outdir))
            time.sleep(0.5)
        failed = [i for i, worker in enumerate(workers) if worker.exitcode != 0]
        if failed:
            sys.exit(f'error: collect worker {failed[0]} failed (exit code {workers[failed[0]].exitcode}); '
                     f'the {episodes_lib.count(outdir)} complete episodes are kept')
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
    progress.update(episodes_lib.count(outdir))


def collect_episodes(config, policy, noise, outdir, count, seed, on_episode=None):
    """Runs `count` episodes of the random or expert policy on one env built in this process (seeded
    `seed`) and writes each to `outdir`. The body of a worker process, or of the collector itself."""
    from common import driver as driver_lib
    from common.replay import Replay
    from vsg import build
    env = build.make_envs(_in_process(config), 1, seed)[0]
    rng = np.random.default_rng(seed)
    act_space = env.act_space['action']
    if policy == 'expert':
        base = lambda obs, state: (np.stack([env.expert_action()]), state)
    else:
        base = driver_lib.random_policy(act_space, rng)
    replay = Replay(outdir, capacity=1)  # reads one file of the directory, keeps one episode in memory
    written = []

    def write(episode, worker):
        if len(written) < count:
            written.append(replay.add_episode(episode))
            if on_episode:
                on_episode()
    driver = driver_lib.Driver([env])
    driver.on_episode(write)
    try:
        driver(noisy(base, act_space, noise, rng), episodes=count)
    except ValueError as e:  # episodes unlike the directory's (Replay checks keys, dtypes and shapes)
        sys.exit(f'error: {e}')
    finally:
        env.close()


def policy_fits(trained, task):
    """Whether an agent trained on `trained` can act in `task`: the same task, or the same DMC task with
    and without Distracting Control Suite distractions (dcs_X is dmc_X with the same spaces and physics),
    so that one policy collects both sides of a distraction comparison."""
    plain = lambda name: 'dmc_' + name[4:] if name.startswith('dcs_') else name
    return plain(trained) == plain(task)


def _collect_with_agent(config, logdir, args, outdir, need, done, progress):
    """A trained agent's policy on W envs in spawned workers (this process holds TensorFlow)."""
    from common import config as config_lib
    from common import driver as driver_lib
    from common.replay import Replay
    from vsg import build
    try:
        agent_config = config_lib.load_run(logdir)
    except config_lib.ConfigError as e:
        sys.exit(f'error: {e}')
    if not policy_fits(agent_config.task, config.task):
        sys.exit(f'error: the checkpoint in {logdir} was trained on {agent_config.task}, not --task {config.task} '
                 f'(a dmc_ policy may also act in its dcs_ twin, and back)')
    seed = worker_seed(config.seed, done, 0)
    env_list = build.make_envs(config.update({'env.parallel': True}), args.workers, seed)
    try:
        agent, _ = build.make_agent(agent_config, env_list[0], logdir)
        act_space = env_list[0].act_space['action']
        policy = noisy(build.agent_policy(agent, 'eval', len(env_list)), act_space, args.noise,
                       np.random.default_rng(seed))
        replay = Replay(outdir, capacity=1)
        written = [0]

        def write(episode, worker):
            if written[0] < need:
                replay.add_episode(episode)
                written[0] += 1
                progress.update(done + written[0])
        driver = driver_lib.Driver(env_list)
        driver.on_episode(write)
        try:
            driver(policy, episodes=need)
        except ValueError as e:
            sys.exit(f'error: {e}')
    finally:
        for env in env_list:
            env.close()


if __name__ == '__main__':
    sys.exit(main())
