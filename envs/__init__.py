"""Environments: `envs.make('<suite>_<task>')` is the only door (DESIGN.md section 5).

Nothing in this package imports TensorFlow: env workers must stay free of it to render.
"""

import functools
import importlib
import numbers

from envs import rendering  # noqa: F401  (sets the headless GL default before MuJoCo loads)
from envs.process import ProcessEnv

# Suite prefix -> 'module:class', imported only when used, so that a process that merely
# makes parallel envs (the trainer, holding TensorFlow) never loads a physics engine.
SUITES = {
    'dmc': 'envs.dmc:DMC',
}


def make(name, seed=0, size=(64, 64), action_repeat=2, time_limit=1000, camera=None,
         parallel=True):
    """Build env `name`, by default in a spawned worker process (see envs.process.ProcessEnv).

    parallel=False builds it in this process, which must not have imported TensorFlow.
    """
    _check_kwargs(size, action_repeat, time_limit)
    suite, _, task = name.partition('_')
    if suite not in SUITES or not task:
        raise ValueError(f"Unknown env '{name}': names are <suite>_<task> with suite one of "
                         f"{', '.join(SUITES)}.")
    constructor = functools.partial(
        _construct, suite, task, seed=seed, size=tuple(size), action_repeat=action_repeat,
        time_limit=time_limit, camera=camera)
    return ProcessEnv(constructor, name) if parallel else constructor()


def _construct(suite, task, **kwargs):
    module, env_class = SUITES[suite].split(':')
    return getattr(importlib.import_module(module), env_class)(task, **kwargs)


def _check_kwargs(size, action_repeat, time_limit):
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(_is_positive_int(side) for side in size)):
        raise ValueError(f'size must be two positive ints (height, width), got {size!r}.')
    if not _is_positive_int(action_repeat):
        raise ValueError(f'action_repeat must be an int >= 1, got {action_repeat!r}.')
    if not _is_positive_int(time_limit):
        raise ValueError(f'time_limit must be an int >= 1 (env steps), got {time_limit!r}.')


def _is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
