"""A gridworld in plain numpy: `grid_reach` and `grid_collect`.

The agent (a white cell) moves on a `side` x `side` grid with five discrete actions (stay, up,
down, left, right; a move into the wall stays) towards a target (a red cell), both placed at random
on distinct cells. reach: reward 1 on the target, which ends the episode as a terminal state.
collect: reward 1 on the target, which then moves to another random cell; only the time limit ends
an episode. It needs no physics engine and steps in microseconds: a quick check of a discrete-action
agent (use `--env.action_repeat 1`: one move per agent step). `expert_action()` walks straight to the
target, rows first (a data policy for vsg.collect).

The image shows the whole grid. The state (envs.make(..., obs='state')) is the two cells, each a
vector of 2, (row, column) divided by side - 1 so that both lie in [0, 1]: `agent` and `target`.
"""

import gymnasium as gym
import numpy as np

from envs import spaces

TASKS = ('reach', 'collect')
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # (row, column): stay, up, down, left, right
BACKGROUND, AGENT, TARGET = (32, 32, 32), (255, 255, 255), (255, 48, 48)


class Grid:

    def __init__(self, task, seed=0, side=8):
        """side: cells per side of the grid (at least 2)."""
        if task not in TASKS:
            raise ValueError(f"Unknown grid task 'grid_{task}'; choose one of: "
                             + ', '.join(f'grid_{name}' for name in TASKS))
        if side < 2:
            raise ValueError(f'grid side={side} must be at least 2 cells.')
        self._task, self._side = task, side
        self._rng = np.random.default_rng(seed)
        self._agent = self._target = None
        self.obs_space = spaces.obs_space()
        self.state_space = {'agent': spaces.vector_space(2), 'target': spaces.vector_space(2)}
        self.act_space = {'action': gym.spaces.Discrete(len(MOVES))}

    def reset(self):
        self._agent = self._rng.integers(0, self._side, 2)
        self._target = self._other_cell(self._agent)
        return spaces.obs(is_first=True)

    def step(self, action):
        self._agent = np.clip(self._agent + MOVES[action], 0, self._side - 1)
        reached = bool(np.array_equal(self._agent, self._target))
        if reached and self._task == 'collect':
            self._target = self._other_cell(self._agent)
        ends = reached and self._task == 'reach'
        return spaces.obs(float(reached), is_last=ends, is_terminal=ends)

    def expert_action(self):
        """The move one cell closer to the target, rows first, as the one-hot vector the agent gives
        (the env's own action is the index; envs.wrappers.OneHotAction maps between them)."""
        row, col = self._target - self._agent
        index = (1 if row < 0 else 2) if row else (3 if col < 0 else 4) if col else 0
        return np.eye(len(MOVES), dtype=np.float32)[index]

    def state(self):
        return spaces.state_vectors({'agent': self._agent / (self._side - 1),
                                     'target': self._target / (self._side - 1)})

    def render(self, size):
        cells = np.empty((self._side, self._side, 3), np.uint8)
        cells[:] = BACKGROUND
        cells[tuple(self._target)] = TARGET
        cells[tuple(self._agent)] = AGENT
        # Nearest-neighbour scaling: pixel (i, j) shows the cell it falls in, for any size.
        rows = np.arange(size[0]) * self._side // size[0]
        cols = np.arange(size[1]) * self._side // size[1]
        return cells[rows[:, None], cols[None, :]]

    def close(self):
        pass

    def _other_cell(self, cell):
        """A uniformly random cell other than `cell`."""
        index = self._rng.integers(self._side ** 2 - 1)
        index += index >= cell[0] * self._side + cell[1]
        return np.array(divmod(int(index), self._side))
