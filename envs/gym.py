"""Any installed gymnasium env that renders `rgb_array` frames, from pixels: `gym_<EnvId>`, e.g.
gym_CartPole-v1. The agent sees the rendered frames (resized by envs.make), never the env's own
observation; `terminated` is a terminal state, `terminated or truncated` ends the episode.
"""

import os

# Classic-control envs draw with pygame, whose SDL would look for a display that training machines
# lack. Only a default: a driver the user chose wins.
os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')

import gymnasium  # noqa: E402

from envs import spaces  # noqa: E402


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
        self._seed = seed  # Seeds the first reset; later resets continue its random stream.
        self.obs_space = spaces.obs_space()
        self.act_space = {'action': self._env.action_space}

    def reset(self):
        self._env.reset(seed=self._seed)
        self._seed = None
        return spaces.obs(is_first=True)

    def step(self, action):
        _, reward, terminated, truncated, _ = self._env.step(action)
        return spaces.obs(reward, is_last=terminated or truncated, is_terminal=terminated)

    def render(self, size):
        return self._env.render()  # At the env's own size: the RenderImage wrapper resizes it.

    def close(self):
        self._env.close()
