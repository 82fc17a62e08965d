"""DeepMind Control Suite: `dmc_<domain>_<task>`, e.g. dmc_walker_walk. Its frames from a camera, and
its own observation dict as state vectors (`position`, `velocity`, ...; scalars as length-1 vectors),
in the suite's own units, unscaled: e.g. cartpole's position (3: cart x, cos and sin of the pole's
angle) and velocity (2), walker's orientations (14), height (1) and velocity (9).

Segmentation (render_segmentation): MuJoCo's segmentation render from the same camera, each pixel
labelled with the id of the body its geom (or site) belongs to, MuJoCo's body index: every non-world
body is one object (cartpole: cart 1, pole 2; walker: torso 1, then thighs, legs and feet 2..7),
and what belongs to the world body (floor, rails, walls, reacher's target) is background 0, as are
the skybox and what belongs to no body (ball_in_cup's string). The ids are fixed by the task's model,
so they mean the same in every frame and episode."""

import difflib

import gymnasium as gym
import numpy as np

from envs import rendering, spaces

# dm_control sets up EGL when imported, and that alone crashes next to TensorFlow (a segfault
# when TensorFlow is imported after it, an abort at exit when before), so check first.
rendering.check_render_allowed()
import mujoco  # noqa: E402
from dm_control import suite  # noqa: E402

# The quadruped's camera 0 is a distant overview; 2 is the close side view (as in DreamerV2).
DEFAULT_CAMERAS = {'quadruped': 2}


def resolve_task(task, prefix='dmc', domains=None):
    """'ball_in_cup_catch' -> ('ball_in_cup', 'catch'); domains may contain underscores. `prefix` is the
    suite's name in errors; `domains` limits the choice (default: every DMC domain)."""
    tasks = {f'{domain}_{name}': (domain, name) for domain, name in suite.ALL_TASKS
             if domains is None or domain in domains}
    if task not in tasks:
        close = difflib.get_close_matches(task, tasks, n=1)
        hint = f'did you mean {prefix}_{close[0]}? ' if close else ''
        raise ValueError(f"Unknown {prefix.upper()} task '{prefix}_{task}'; {hint}choose one of: "
                         + ', '.join(f'{prefix}_{name}' for name in tasks))
    return tasks[task]


class DMC:
    """Loads the task and renders it; envs.make adds the time limit, action repeat and scaling."""

    def __init__(self, task, seed=0, camera=-1):
        """camera: a camera id, or -1 for the domain's default."""
        domain, name = resolve_task(task)
        # The TimeLimit wrapper ends episodes, so the task's own limit is lifted.
        self._env = suite.load(domain, name, task_kwargs={'random': seed, 'time_limit': np.inf})
        # Before the first render, which sizes the shadow map (rendering.DMC_SHADOW_SIZE says why).
        self._env.physics.model.vis.quality.shadowsize = rendering.DMC_SHADOW_SIZE
        self._camera = DEFAULT_CAMERAS.get(domain, 0) if camera < 0 else camera
        spec = self._env.action_spec()
        self.obs_space = spaces.obs_space()
        self.state_space = {key: spaces.vector_space(np.prod(spec.shape, dtype=int))
                            for key, spec in self._env.observation_spec().items()}
        self._timestep = None
        self.act_space = {'action': gym.spaces.Box(
            np.broadcast_to(spec.minimum, spec.shape), np.broadcast_to(spec.maximum, spec.shape),
            spec.shape, spec.dtype)}

    def reset(self):
        self._timestep = self._env.reset()
        return spaces.obs(is_first=True)

    def step(self, action):
        timestep = self._timestep = self._env.step(action)
        reward = 0.0 if timestep.reward is None or np.isnan(timestep.reward) else timestep.reward
        # A task's own end with zero discount is a true terminal state.
        return spaces.obs(reward, is_last=timestep.last(),
                          is_terminal=timestep.last() and timestep.discount == 0)

    def state(self):
        return spaces.state_vectors(self._timestep.observation)

    def render(self, size):
        rendering.check_render_allowed()
        return self._env.physics.render(*size, camera_id=self._camera)

    def render_segmentation(self, size):
        rendering.check_render_allowed()
        physics = self._env.physics
        return body_labels(physics.model, physics.render(*size, camera_id=self._camera, segmentation=True))

    def close(self):
        self._env.close()


def body_labels(model, segmentation):
    """uint8 [H, W] body ids from MuJoCo's segmentation [H, W, 2] of (object id, object type), -1 where
    nothing was drawn: a geom's or site's pixels take its body's index (the world body's, 0, for the
    floor), everything else 0."""
    if model.nbody > 256:
        raise ValueError(f'This model has {model.nbody} bodies; segmentation ids are uint8 (at most 255 objects).')
    ids, types = segmentation[..., 0], segmentation[..., 1]
    labels = np.zeros(ids.shape, np.uint8)
    for kind, body_of in ((mujoco.mjtObj.mjOBJ_GEOM, model.geom_bodyid), (mujoco.mjtObj.mjOBJ_SITE, model.site_bodyid)):
        drawn = types == kind
        labels[drawn] = body_of[ids[drawn]]
    return labels
