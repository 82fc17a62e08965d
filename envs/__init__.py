"""Environments: `envs.make('<suite>_<task>')` is the only door (docs/design.md, "Environments").

Nothing in this package imports TensorFlow: env workers must stay free of it to render.
Importing it also registers every env with gymnasium as `vsg/Env-v0` (see envs.as_gymnasium).
"""

import functools
import importlib
import numbers

import gymnasium
import numpy as np

from envs import rendering  # noqa: F401  (sets the headless GL default before MuJoCo loads)
from envs import wrappers
from envs.process import ProcessEnv

# Suite prefix -> (its env class as 'module:class', the settings its constructor takes besides
# the task and seed: the config's `env.<suite>` block). Imported only when used, so that a process
# that merely makes parallel envs (the trainer, holding TensorFlow) never loads a physics engine.
SUITES = {
    'dmc': ('envs.dmc:DMC', ('camera',)),
    'grid': ('envs.grid:Grid', ('side', 'distractors')),
    'gym': ('envs.gym:Gym', ()),
    'bbs': ('envs.bbs:BBS', ('max_objects', 'max_distractors', 'variable_num_objects',
                             'variable_num_distractors', 'variable_goal_position', 'agent_view_size',
                             'arena_scale', 'shaping')),
    'dcs': ('envs.dcs:DCS', ('difficulty', 'dynamic', 'distractions', 'background_dir', 'background_split',
                             'camera')),
    'fetch': ('envs.fetch:Fetch', ()),
}
# The suites that render a segmentation (`render_segmentation(size)`; envs.make(..., segmentation=True)).
SEGMENTATION = ('dmc', 'dcs', 'fetch', 'bbs', 'grid')

gymnasium.register('vsg/Env-v0', entry_point='envs.as_gymnasium:GymnasiumEnv')


def make(name, seed=0, size=(64, 64), action_repeat=2, time_limit=1000, parallel=True, obs='pixels',
         segmentation=False, **settings):
    """Build env `name` with the shared wrappers (envs.wrappers), by default in a spawned worker
    process (see envs.process.ProcessEnv).

    time_limit counts env frames, so an episode lasts at most time_limit / action_repeat agent
    steps. `obs` is what the agent observes: pixels (`image`), state (the suite's state vectors, never
    rendered) or both. segmentation=True adds the key `segmentation`, a uint8 label map of `size`
    from the image's camera (0 the background, an id per object), whatever `obs` is; only the suites
    in SEGMENTATION render one. `settings` are the suite's own (SUITES lists them). parallel=False
    builds the env in this process, which must not have imported TensorFlow if the suite is a MuJoCo
    one (to render, which segmentation does in any obs mode).
    """
    _check_kwargs(size, action_repeat, time_limit)
    wrappers.check_obs(obs)  # here too, so a bad value fails before a worker is spawned
    suite, _, task = name.partition('_')
    if suite not in SUITES or not task:
        raise ValueError(f"Unknown env '{name}': names are <suite>_<task> with suite one of "
                         f"{', '.join(SUITES)}.")
    if not isinstance(segmentation, (bool, np.bool_)):
        raise ValueError(f'segmentation={segmentation!r} must be true or false.')
    if segmentation and suite not in SEGMENTATION:
        raise ValueError(f"Suite {suite} renders no segmentation; the suites that do: {', '.join(SEGMENTATION)}.")
    allowed = SUITES[suite][1]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown setting {', '.join(map(repr, unknown))} for suite {suite}; "
                         f"allowed: {', '.join(allowed) or 'none'}.")
    constructor = functools.partial(
        _construct, suite, task, seed, tuple(size), action_repeat, time_limit, obs, bool(segmentation), settings)
    return ProcessEnv(constructor, name) if parallel else constructor()


def _construct(suite, task, seed, size, action_repeat, time_limit, obs, segmentation, settings):
    module, env_class = SUITES[suite][0].split(':')
    env = getattr(importlib.import_module(module), env_class)(task, seed=seed, **settings)
    try:
        return wrappers.wrap(env, size, action_repeat, time_limit, obs, segmentation)
    except Exception:
        env.close()
        raise


def _check_kwargs(size, action_repeat, time_limit):
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(_is_positive_int(side) for side in size)):
        raise ValueError(f'size must be two positive ints (height, width), got {size!r}.')
    if not _is_positive_int(action_repeat):
        raise ValueError(f'action_repeat must be an int >= 1, got {action_repeat!r}.')
    if not _is_positive_int(time_limit):
        raise ValueError(f'time_limit must be an int >= 1 (env frames), got {time_limit!r}.')


def _is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
