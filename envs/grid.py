"""A gridworld in plain numpy: `grid_reach` and `grid_collect`.

The agent (a white cell) moves on a `side` x `side` grid with five discrete actions (stay, up,
down, left, right; a move into the wall stays) towards a target (a red cell), both placed at random
on distinct cells. reach: reward 1 on the target, which ends the episode as a terminal state.
collect: reward 1 on the target, which then moves to another random cell; only the time limit ends
an episode. It needs no physics engine and steps in microseconds: a quick check of a discrete-action
agent (use `--env.action_repeat 1`: one move per agent step). `expert_action()` walks straight to the
target, rows first (a data policy for vsg.collect).

`distractors` N cells of their own colours each take a random move every step (walls stop them; they
pass through everything else and never score): things that move in the frame without the action,
for telling a latent action that follows the agent from one that follows all motion. Drawn below the
target and the agent.

The image shows the whole grid. The state (envs.make(..., obs='state')) is the cells, each a
vector of 2, (row, column) divided by side - 1 so that all lie in [0, 1]: `agent`, `target` and, with
distractors, `distractors` (2 N). The segmentation labels the agent 1, the target 2 and distractor i
3 + i, the floor 0.
"""

import gymnasium as gym
import numpy as np

from envs import spaces

TASKS = ('reach', 'collect')
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # (row, column): stay, up, down, left, right
BACKGROUND, AGENT, TARGET = (32, 32, 32), (255, 255, 255), (255, 48, 48)
DISTRACTOR_COLOURS = ((48, 96, 255), (48, 200, 48), (255, 200, 0), (200, 64, 255))  # by index, cycled
MAX_DISTRACTORS = 16


class Grid:

    def __init__(self, task, seed=0, side=8, distractors=0):
        """side: cells per side of the grid (at least 2); distractors: randomly moving cells (0..16)."""
        if task not in TASKS:
            raise ValueError(f"Unknown grid task 'grid_{task}'; choose one of: "
                             + ', '.join(f'grid_{name}' for name in TASKS))
        if side < 2:
            raise ValueError(f'grid side={side} must be at least 2 cells.')
        if not 0 <= distractors <= MAX_DISTRACTORS:
            raise ValueError(f'grid distractors={distractors} must lie in 0..{MAX_DISTRACTORS}.')
        self._task, self._side, self._count = task, side, int(distractors)
        self._rng = np.random.default_rng(seed)
        # Their own generator, so that distractors never change where agent and target go.
        self._distractor_rng = np.random.default_rng([seed, 1])
        self._agent = self._target = None
        self._distractors = np.zeros((self._count, 2), np.int64)
        self.obs_space = spaces.obs_space()
        self.state_space = {'agent': spaces.vector_space(2), 'target': spaces.vector_space(2)}
        if self._count:
            self.state_space['distractors'] = spaces.vector_space(2 * self._count)
        self.act_space = {'action': gym.spaces.Discrete(len(MOVES))}

    def reset(self):
        self._agent = self._rng.integers(0, self._side, 2)
        self._target = self._other_cell(self._agent)
        self._distractors = self._distractor_rng.integers(0, self._side, (self._count, 2))
        return spaces.obs(is_first=True)

    def step(self, action):
        self._agent = np.clip(self._agent + MOVES[action], 0, self._side - 1)
        moves = MOVES[self._distractor_rng.integers(0, len(MOVES), self._count)]
        self._distractors = np.clip(self._distractors + moves, 0, self._side - 1)
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
        cells = {'agent': self._agent, 'target': self._target}
        if self._count:
            cells['distractors'] = self._distractors.reshape(-1)
        return spaces.state_vectors({key: value / (self._side - 1) for key, value in cells.items()})

    def render(self, size):
        colours = [BACKGROUND, AGENT, TARGET, *(DISTRACTOR_COLOURS[i % len(DISTRACTOR_COLOURS)]
                                               for i in range(self._count))]
        return np.asarray(colours, np.uint8)[self.render_segmentation(size)]

    def render_segmentation(self, size):
        """The ids of the module docstring per pixel of render(size): uint8 [H, W]."""
        cells = np.zeros((self._side, self._side), np.uint8)
        for i, cell in enumerate(self._distractors):
            cells[tuple(cell)] = 3 + i
        cells[tuple(self._target)] = 2
        cells[tuple(self._agent)] = 1
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
