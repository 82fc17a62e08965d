"""What every entry point builds from a config: the config itself (parsed and checked), the envs, the
agent with its checkpoint, the replay, and the agent as a policy for the driver. vsg.train runs the
online loop on them; vsg.evaluate, vsg.collect, vsg.diagnose, vsg.screen, vsg.bench and vsg.offline
reuse them.
"""
import pathlib
import sys
import time

import envs
from common import config as config_lib
from common import episodes
from common.replay import Replay

CHECKPOINT = 'checkpoint.npz'  # a run's newest checkpoint, inside its logdir


def parse(argv, need_logdir=True):
    """Loads the config, or prints the help for --help and exits, or exits with one line naming what is wrong."""
    try:
        config = config_lib.load(argv)
        if need_logdir and not config.logdir:
            raise config_lib.ConfigError('--logdir is required (the run directory to create or resume)')
        from vsg import cores
        if config.core not in cores.CORES:
            raise config_lib.ConfigError(f"core={config.core!r} is not allowed; choose one of {', '.join(cores.CORES)}")
    except config_lib.HelpRequested as request:
        print(request)
        sys.exit(0)
    except config_lib.ConfigError as e:
        sys.exit(f'error: {e}')
    if config.precision == 'auto':  # Resolved here, so config.yaml records what ran.
        from common import machine
        info, gpu = machine.cpu_info(), machine.gpu_capability()
        config = config.update(precision=machine.auto_precision(info['flags'], gpu))
        where = f'a GPU of compute capability {gpu}' if gpu else f"{info['model'] or 'this CPU'} (flags: {', '.join(info['flags'])})"
        print(f'precision auto: {config.precision} on {where}')
    return config


def observation_settings(config):
    """The settings that decide which observation keys a run's agent reads and predicts, or its replay
    holds (a segmentation never reaches the agent, but episodes with and without one do not mix)."""
    suite = config.task.partition('_')[0]
    keys = ['task', f'env.{suite}.obs', f'env.{suite}.segmentation', 'encoder.cnn_keys', 'encoder.mlp_keys',
            'decoder.cnn_keys', 'decoder.mlp_keys', 'encoder.symlog_inputs']
    return {key: config.flat[key] for key in keys if key in config.flat}


def check_logdir(config, logdir):
    """Why `config` cannot run in `logdir` (one line), or None: a path that is not a directory, or a
    run there that observed other keys than this config would (its replay and checkpoint hold them)."""
    for path in (logdir, *logdir.parents):
        if path.exists() and not path.is_dir():
            return f'--logdir {logdir}: {path} is a file, not a directory; give a run directory to create or resume'
    if not (logdir / 'config.yaml').exists():
        return None
    try:
        saved = observation_settings(config_lib.load_run(logdir))
    except config_lib.ConfigError as e:
        return str(e)
    changed = [key for key, value in observation_settings(config).items() if saved.get(key) != value]
    if changed:
        was = ', '.join(f'{key}={saved.get(key)!r}' for key in changed)
        now = ', '.join(f'{key}={config.flat[key]!r}' for key in changed)
        return (f'{logdir} holds a run with {was}, this one asks for {now}; its replay and checkpoint hold other '
                'observations: resume with its settings or give a new --logdir')
    return None


def make_envs(config, count, seed):
    """`count` envs seeded seed, seed+1, ...; a bad task name or suite setting exits with envs.make's
    one-line reason."""
    suite = config.task.partition('_')[0]
    # The task's suite settings, e.g. env.dmc.camera; a suite without settings has no block.
    settings = dict(config.env.get(suite) or {}) if suite in envs.SUITES else {}
    kwargs = dict(
        size=tuple(config.env.size), action_repeat=config.env.action_repeat,
        time_limit=config.env.time_limit, parallel=config.env.parallel, **settings)
    made = []
    try:
        for i in range(count):
            made.append(envs.make(config.task, seed=seed + i, **kwargs))
    except ValueError as e:
        for env in made:
            env.close()
        sys.exit(f'error: {e}')
    return made


def make_learner(config):
    """The learner (vsg/learner.py), made before any other TensorFlow op: a strategy sets up devices and
    collectives then. A strategy that cannot run as configured exits with its one-line reason."""
    from vsg.learner import Learner
    try:
        return Learner(config)
    except ValueError as e:
        sys.exit(f'error: {e}')


def make_agent(config, env, logdir=None, learner=None):
    """Builds the agent (by `learner`, default: one from `config`) and restores `logdir`'s checkpoint if
    there is one (None: a fresh agent); returns (agent, counters)."""
    from common import checkpoint
    from vsg.agent import Agent
    try:
        agent = Agent(env.obs_space, env.act_space, config, learner)
    except ValueError as e:  # settings that do not fit together or fit this env, e.g. actor.init_std
        sys.exit(f'error: {e}')
    counters = {}
    path = pathlib.Path(logdir) / CHECKPOINT if logdir is not None else None
    if path is not None and path.exists():
        try:
            counters = checkpoint.load(path, agent.variables)
        except checkpoint.CheckpointError as e:
            sys.exit(f'error: {e}')
        print(f'Resumed from {path} at step {counters.get("step", 0)}.')
    return agent, counters


def load_replay(config, directory, select=None):
    """The replay, with a resumed run's episodes reloaded: minutes for a large one, hence the two lines.
    `select(path) -> bool` loads only some episodes (see Replay)."""
    files = sum(1 for path in episodes.paths(directory) if select is None or select(path))
    if files:
        print(f'Loading {files} replay episode files from {directory}.', flush=True)
    start = time.monotonic()
    replay = Replay(directory, capacity=config.replay.capacity, seed=config.seed,
                    prioritize_ends=config.replay.prioritize_ends, select=select)
    if files:
        print(f'Loaded {replay.num_episodes} episodes ({replay.num_steps:,} agent steps) '
              f'in {time.monotonic() - start:.1f} s.', flush=True)
    return replay


def agent_policy(agent, mode, num_envs):
    """Adapts the compiled `agent.policy` to the driver's numpy interface."""
    def policy(obs, state):
        if state is None:
            state = agent.initial_policy_state(num_envs)
        inputs = {key: obs[key] for key in (*agent.wm.encoder.keys, 'is_first')}
        action, state = agent.policy(inputs, state, mode)
        return action.numpy(), state
    return policy
