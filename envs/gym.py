"""Any installed gymnasium env that renders `rgb_array` frames: `gym_<EnvId>`, e.g. gym_CartPole-v1.
`terminated` is a terminal state, `terminated or truncated` ends the episode.

The image is the rendered frame (resized by envs.make). The state is the env's own observation as
one float32 vector `vector`, flattened as gymnasium.spaces.flatten does (a Discrete observation as a
one-hot vector, MultiDiscrete as one-hot vectors end to end), unscaled. Envs whose observation is a
Dict, Tuple or another nested space work from pixels only: asking for their state is a ValueError.
"""

import os

# Classic-control envs draw with pygame, whose SDL would look for a display that training machines
# lack. Only a default: a driver the user chose wins.
os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')

import gymnasium  # noqa: E402

from envs import spaces  # noqa: E402

# Observation spaces that flatten into one vector (gymnasium.spaces.flatten).
FLAT_SPACES = (gymnasium.spaces.Box, gymnasium.spaces.Discrete, gymnasium.spaces.MultiBinary,
               gymnasium.spaces.MultiDiscrete)


class Gym:

    def __init__(self, task, seed=0):
        try:
            self._env = gymnasium.make(task, render_mode='rgb_array')
        except gymnasium.error.Error as error:  # Unknown id, or a missing dependency.
            raise ValueError(f"Cannot make gymnasium env 'gym_{task}': {' '.join(str(error).split())}") from None
        except ImportError as error:  # E.g. gymnasium's MuJoCo renderer imports imageio.
            raise ValueError(f"gymnasium env 'gym_{task}' needs a package that is not installed ({error}); "
                             "install its gymnasium extra, e.g. pip install 'gymnasium[mujoco]'") from None
        if 'rgb_array' not in self._env.metadata.get('render_modes', ()):
            self._env.close()
            raise ValueError(f"gymnasium env 'gym_{task}' does not render rgb_array frames.")
        self._task = task
        self._seed = seed  # Seeds the first reset; later resets continue its random stream.
        self._observation = None  # The env's own, of the current step.
        self.obs_space = spaces.obs_space()
        self.act_space = {'action': self._env.action_space}

    @property
    def state_space(self):
        """Checked only when asked for (state mode), so that pixels work whatever the observation space."""
        space = self._env.observation_space
        if not isinstance(space, FLAT_SPACES):
            raise ValueError(f"gym_{self._task} has the observation space {' '.join(str(space).split())}, which has "
                             "no state vector (Box, Discrete, MultiBinary or MultiDiscrete only); use obs='pixels'.")
        return {'vector': spaces.vector_space(gymnasium.spaces.flatdim(space))}

    def reset(self):
        self._observation, _ = self._env.reset(seed=self._seed)
        self._seed = None
        return spaces.obs(is_first=True)

    def step(self, action):
        self._observation, reward, terminated, truncated, _ = self._env.step(action)
        return spaces.obs(reward, is_last=terminated or truncated, is_terminal=terminated)

    def state(self):
        vector = gymnasium.spaces.flatten(self._env.observation_space, self._observation)
        return spaces.state_vectors({'vector': vector})

    def render(self, size):
        return self._env.render()  # At the env's own size: the Observe wrapper resizes it.

    def close(self):
        self._env.close()
