"""DeepMind Control Suite from pixels: `dmc_<domain>_<task>`, e.g. dmc_walker_walk."""

import difflib

import numpy as np

from envs import rendering, spaces

# dm_control sets up EGL when imported, and that alone crashes next to TensorFlow (a segfault
# when TensorFlow is imported after it, an abort at exit when before), so check first.
rendering.check_render_allowed()
from dm_control import suite  # noqa: E402

# The quadruped's camera 0 is a distant overview; 2 is the close side view (as in DreamerV2).
DEFAULT_CAMERAS = {'quadruped': 2}


def resolve_task(task):
    """'ball_in_cup_catch' -> ('ball_in_cup', 'catch'); domains may contain underscores."""
    tasks = {f'{domain}_{name}': (domain, name) for domain, name in suite.ALL_TASKS}
    if task not in tasks:
        close = difflib.get_close_matches(task, tasks, n=1)
        hint = f'did you mean dmc_{close[0]}? ' if close else ''
        raise ValueError(f"Unknown DMC task 'dmc_{task}'; {hint}choose one of: "
                         + ', '.join(f'dmc_{name}' for name in tasks))
    return tasks[task]


class DMC:

    def __init__(self, task, seed=0, size=(64, 64), action_repeat=2, time_limit=1000,
                 camera=None):
        domain, name = resolve_task(task)
        # We count the time limit ourselves, so that it is in env steps whatever the task's own.
        self._env = suite.load(domain, name, task_kwargs={'random': seed, 'time_limit': np.inf})
        self._size = tuple(size)
        self._action_repeat = action_repeat
        self._time_limit = time_limit
        self._camera = DEFAULT_CAMERAS.get(domain, 0) if camera is None else camera
        spec = self._env.action_spec()
        self._action_low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        self._action_high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self._steps = 0
        self._episode_over = True
        self.obs_space = spaces.obs_space(self._size)
        self.act_space = spaces.act_space(spec.shape)

    def reset(self):
        self._env.reset()
        self._steps = 0
        self._episode_over = False
        return self._obs(0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action):
        if self._episode_over:
            raise RuntimeError('step() called with no episode running (never reset, or the last '
                               'obs had is_last=True); call reset() first.')
        action = np.asarray(action)
        if action.shape != self.act_space['action'].shape:
            raise ValueError(f'Action shape {action.shape} does not match the action space '
                             f"{self.act_space['action'].shape}.")
        env_action = spaces.denormalize_action(action, self._action_low, self._action_high)
        reward = 0.0
        for _ in range(self._action_repeat):
            timestep = self._env.step(env_action)
            if timestep.reward is not None and not np.isnan(timestep.reward):
                reward += timestep.reward
            self._steps += 1
            if timestep.last() or self._steps >= self._time_limit:
                break
        # A task's own end with zero discount is a true terminal state; our time limit is not.
        is_terminal = timestep.last() and timestep.discount == 0
        self._episode_over = timestep.last() or self._steps >= self._time_limit
        return self._obs(reward, is_first=False, is_last=self._episode_over,
                         is_terminal=bool(is_terminal))

    def close(self):
        self._env.close()

    def _obs(self, reward, is_first, is_last, is_terminal):
        # Rendering dominates the step time, so it happens once per agent step, never per substep.
        rendering.check_render_allowed()
        image = self._env.physics.render(*self._size, camera_id=self._camera)
        return {'image': image, 'reward': np.float32(reward), 'is_first': is_first,
                'is_last': is_last, 'is_terminal': is_terminal}
