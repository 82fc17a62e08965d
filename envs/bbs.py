"""BringBackShapes (the VSG paper's BBS): `bbs_sparse` and `bbs_dense`.

A top-down 2-D arena simulated with Chipmunk2D (pymunk) without gravity. The agent, a disc, pushes
coloured shapes into a goal pocket cut into the right wall; brownian kite-shaped distractors may
wander around and collide with everything. The image is partial: a square window centred on the
agent. The state is full: every body wherever it is (see State below).

World frame (pixels, y down as in the image): the arena floor is [0, width] x [0, length] with
width = 800 * arena_scale and length = 700 * arena_scale, walled by 125 px on every side. The goal
is the pocket [width, width + 100] x [goal_y, goal_y + goal_height] in the right wall, goal_height
= 0.5 * (length - 250), centred vertically unless variable_goal_position draws goal_y per episode.
The pocket is solid for the agent and the distractors (the whole right wall is one static box that
only they collide with), so only the shapes enter it. A shape is scored, and removed, at the end of
the step in which its centre of mass lies inside the pocket (x > width, y within the mouth).

Actions are Box(-1, 1, (2,)): the first maps onto a direction in [0, 2 pi] (0 points right, pi/2
down), the second onto a force in [0, 400]; the force acts for 100 accumulated sub-steps (100 times
the force) during the single physics step of 1/60 s of each env step.

Reward (per env step): sparse, the number of shapes scored in that step; dense, each of them also
earns max(0, 1.5 - steps / 1000), steps being the env steps since reset including this one. Scoring
the last shape ends the episode as a terminal state (`success`); the time limit is the wrappers'.
The obs carries `success` and `log_scored` (shapes scored so far this episode) besides the usual keys.

`shaping` > 0 (not in the paper) adds potential-based shaping, shaping * (phi(s') - phi(s)) with
phi = -(the distance from the agent to the nearest shape in play + the distances of all shapes in
play to the goal's mouth) / arena width, so that an agent that has never scored still learns to
reach and push shapes; being a difference of potentials it leaves the optimal policy unchanged
(Ng et al. 1999). A scored shape adds nothing to phi: pushing it in earns shaping * its distance.

State (envs.make(..., obs='state')): positions are divided by the arena's size, x by width and y
by length, so that the floor is [0, 1]^2 (the goal pocket reaches x = 1 + 100 / width); velocities
are divided by MAX_SPEED (1500 px/s, the cap of the driven bodies), so that they lie in about [-1, 1].
Slots that hold no body are zeros. Orientations and the shapes' kinds and colours are left out.
  agent_pos, agent_vel            2 each
  shape_pos, shape_vel            2 * max_objects each: slot i is the episode's i-th shape
  shape_present                   max_objects: 1 while that shape is in play, 0 once scored or when
                                  variable_num_objects drew fewer shapes
  goal                            2: the centre of the goal pocket
  distractor_pos, distractor_vel  2 * max_distractors each; left out when max_distractors is 0
  distractor_present              max_distractors, only with variable_num_distractors (else all are there)

Segmentation (envs.make(..., segmentation=True)): a label map of the agent's view, drawn like the
frame (each pixel takes the id of the body over its centre): the agent AGENT_ID, the episode's i-th
shape SHAPE_IDS[i] (2 + i, its state slot), distractor j DISTRACTOR_IDS[j] (7 + j); the floor, the
walls, what lies outside the arena and the goal pocket (a fixed part of the arena, not a body) 0.

All randomness comes from one np.random.default_rng(seed): the same seed gives the same episodes
bit for bit, and each reset() continues the stream.
"""

import math
import numbers

import gymnasium as gym
import numpy as np
import pymunk
from PIL import Image, ImageDraw

from envs import spaces

TASKS = ('sparse', 'dense')

WALL = 125.0  # Wall thickness (not scaled).
BASE_WIDTH, BASE_LENGTH = 800.0, 700.0
GOAL_WIDTH = 100.0
DT = 1 / 60
DAMPING = 0.7
SUBSTEPS = 100  # The action's force is accumulated this many times per physics step.
MAX_FORCE = 400.0
DISTRACTOR_FORCE = 0.2 * MAX_FORCE
DISTRACTOR_HOLD = (2, 9)  # Steps a distractor keeps its force, drawn uniformly (inclusive).
AGENT_RADIUS, AGENT_MASS = 15.0, 10.0
OBJECT_MASS, DISTRACTOR_MASS = 20.0, 10.0
# Chipmunk has no continuous collision detection: driven bodies are capped at this speed (px/s),
# 25 px per step at most, so that nothing tunnels through a wall or a shape.
MAX_SPEED = 1500.0
OBJECT_ZONE = 0.7  # Shapes start in this left fraction of the arena.
MIN_ARENA_SCALE = 0.6  # Below, the goal opening (0.5 * (700 * scale - 250) px) is too narrow for a square.
MAX_DISTRACTORS = 20
# The dense bonus per score: max(0, DENSE_BONUS - steps / DENSE_STEPS).
DENSE_BONUS, DENSE_STEPS = 1.5, 1000.0

# Collision categories: the right wall's whole box (goal included) collides with the agent and the
# distractors only, its boxes around the goal with the shapes only.
CAT_AGENT, CAT_OBJECT, CAT_DISTRACTOR, CAT_WALL, CAT_DISC_WALL = 1, 2, 4, 8, 16
ALL = 0xFFFFFFFF

FLOOR = (236, 236, 230)
WALL_COLOUR = (70, 70, 76)
GOAL_COLOUR = (250, 226, 140)
AGENT_COLOUR = (25, 25, 25)
DISTRACTOR_COLOUR = (128, 110, 90)
COLOURS = {'orange': (255, 140, 0), 'blue': (35, 90, 230), 'green': (40, 170, 70),
           'red': (215, 35, 35), 'purple': (145, 60, 185)}
OVERLAY, OVERLAY_ALPHA = np.array((128, 128, 128), np.float32), 0.5
SUPERSAMPLE = 2
BODY_MARGIN = 40.0  # Bodies are smaller than this: drawing skips those wholly this far outside the window.

# Segmentation ids (0: floor, walls, goal pocket), fixed per slot whatever the settings.
AGENT_ID = 1
SHAPE_IDS = tuple(range(2, 2 + len(COLOURS)))
DISTRACTOR_IDS = tuple(range(SHAPE_IDS[-1] + 1, SHAPE_IDS[-1] + 1 + MAX_DISTRACTORS))


def _regular(count, radius, start=-math.pi / 2):
    angles = start + 2 * math.pi * np.arange(count) / count
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def _box(width, height):
    return np.array([[-width, -height], [width, -height], [width, height], [-width, height]]) / 2


def _centred(vertices):
    """The polygon's vertices shifted so that its centroid (of area) is the origin."""
    x, y = np.asarray(vertices, np.float64).T
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    centroid = np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()])
    return vertices - centroid / (6 * area)


# Shape name -> local vertices (centroid at the origin); each is drawn with probability 1/5.
SHAPES = {
    'triangle': _regular(3, 50 / math.sqrt(3)),  # Equilateral, side 50.
    'square': _box(50, 50),
    'rectangle': _box(50, 25),
    'pentagon': _regular(5, 30),
    'hexagon': _regular(6, 28),
}
KITE = _centred(np.array([[0.0, -22.0], [11.0, 0.0], [0.0, 10.0], [-11.0, 0.0]]))


# The scripted expert's gains (tuned for action repeat 4, as in the paper): it pushes once within
# `cone` rad of right behind the shape and `near` reaches of it, at `push` px/s, turning back toward
# the line shape-goal by `steer` times its offset from it (in reaches); otherwise it circles round at
# `orbit` reaches, moving at up to `move` px/s.
EXPERT = dict(cone=0.3, near=2.5, push=200.0, steer=6.0, move=350.0, orbit=1.35)


class Thing:
    """A dynamic body of the arena with what it takes to draw it, and its segmentation id."""

    def __init__(self, body, shape, vertices, colour, kind, label):
        self.body, self.shape, self.vertices, self.colour, self.kind = body, shape, vertices, colour, kind
        self.label = label
        # Circumradius about the centre of mass (a disc: its radius).
        self.radius = AGENT_RADIUS if vertices is None else float(np.max(np.hypot(*vertices.T)))
        self.hold, self.force = 0, (0.0, 0.0)  # Distractors: steps left of the current force.


class BBS:

    def __init__(self, task, seed=0, max_objects=5, max_distractors=0, variable_num_objects=False,
                 variable_num_distractors=False, variable_goal_position=False, agent_view_size=125,
                 arena_scale=1.0, shaping=0.0):
        """max_objects: shapes per episode (1..5); max_distractors: brownian distractors (0..20);
        variable_num_objects / variable_num_distractors: draw those counts each episode uniformly in
        1..max_objects / 0..max_distractors; variable_goal_position: draw the goal's height along
        the right wall each episode; agent_view_size: half the side in px of the square the agent
        sees; arena_scale: multiplies the arena's width and length (not the walls, shapes or view);
        shaping: scale of the potential-based shaping reward (0: the paper's reward)."""
        if task not in TASKS:
            raise ValueError(f"Unknown bbs task 'bbs_{task}'; choose one of: "
                             + ', '.join(f'bbs_{name}' for name in TASKS))
        _check_int('max_objects', max_objects, 1, len(COLOURS))
        _check_int('max_distractors', max_distractors, 0, MAX_DISTRACTORS)
        for name, value in (('variable_num_objects', variable_num_objects),
                            ('variable_num_distractors', variable_num_distractors),
                            ('variable_goal_position', variable_goal_position)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f'bbs {name}={value!r} must be a bool (true or false).')
        _check_number('agent_view_size', agent_view_size, 0, 'a number > 0 (px)')
        _check_number('arena_scale', arena_scale, MIN_ARENA_SCALE, f'a number >= {MIN_ARENA_SCALE} (smaller '
                      'arenas leave no goal opening that a shape fits through)', inclusive=True)
        _check_number('shaping', shaping, 0, 'a number >= 0 (0: no shaping)', inclusive=True)
        self._dense = task == 'dense'
        self._shaping = float(shaping)
        self._max_objects, self._max_distractors = int(max_objects), int(max_distractors)
        self._variable_objects = bool(variable_num_objects)
        self._variable_distractors = bool(variable_num_distractors)
        self._variable_goal = bool(variable_goal_position)
        self._view = float(agent_view_size)
        self.width, self.length = BASE_WIDTH * float(arena_scale), BASE_LENGTH * float(arena_scale)
        self.goal_height = 0.5 * (self.length - 250)
        self.goal_y = (self.length - self.goal_height) / 2
        self._rng = np.random.default_rng(seed)
        self.space = self.agent = None
        self.objects, self.distractors = [], []  # The shapes still in play; the distractors.
        self._shapes = []  # The episode's shapes in order, scored ones too: the state's slots.
        self._num_objects, self._steps, self._scored = 0, 0, 0
        self._expert_target = None
        self.obs_space = {**spaces.obs_space(), 'success': gym.spaces.Box(0, 1, (), bool),
                          'log_scored': gym.spaces.Box(0, self._max_objects, (), np.int32)}
        self.act_space = {'action': gym.spaces.Box(-1, 1, (2,), np.float32)}
        self.state_space = self._state_space()

    # --- The env interface.

    def reset(self):
        rng = self._rng
        num_objects = int(rng.integers(1, self._max_objects + 1)) if self._variable_objects else self._max_objects
        num_distractors = (int(rng.integers(0, self._max_distractors + 1)) if self._variable_distractors
                           else self._max_distractors)
        if self._variable_goal:
            self.goal_y = float(rng.uniform(0, self.length - self.goal_height))
        self._build_space()
        placed = []  # (x, y, radius) of the bodies placed so far.
        self.agent = self._add_agent(self._place(placed, AGENT_RADIUS, self.width))
        self.objects = []
        for index in range(num_objects):
            name = list(SHAPES)[rng.integers(len(SHAPES))]
            colour = list(COLOURS.values())[rng.integers(len(COLOURS))]
            vertices = SHAPES[name]
            radius = float(np.max(np.hypot(*vertices.T)))
            position = self._place(placed, radius, OBJECT_ZONE * self.width)
            angle = float(rng.uniform(0, 2 * math.pi))
            self.objects.append(self._add_poly(vertices, OBJECT_MASS, position, angle, colour, name,
                                               CAT_OBJECT, SHAPE_IDS[index]))
        self.distractors = []
        for index in range(num_distractors):
            radius = float(np.max(np.hypot(*KITE.T)))
            position = self._place(placed, radius, self.width)
            angle = float(rng.uniform(0, 2 * math.pi))
            self.distractors.append(self._add_poly(KITE, DISTRACTOR_MASS, position, angle,
                                                   DISTRACTOR_COLOUR, 'kite', CAT_DISTRACTOR, DISTRACTOR_IDS[index]))
        self._shapes = list(self.objects)
        self._num_objects, self._steps, self._scored = num_objects, 0, 0
        self._expert_target = None
        self._potential = self.potential()
        return self._obs(0.0, is_first=True)

    def step(self, action):
        if self.space is None:
            raise RuntimeError('bbs: call reset() before step().')
        action = spaces.checked_action(action, (2,), 'bbs')
        action = np.clip(action, -1, 1)
        angle = (action[0] + 1) * math.pi
        force = (action[1] + 1) / 2 * MAX_FORCE * SUBSTEPS
        body = self.agent.body
        body.apply_force_at_world_point((force * math.cos(angle), force * math.sin(angle)), body.position)
        self._push_distractors()
        self.space.step(DT)
        self._cap_speed(self.agent.body)
        for thing in self.distractors:
            self._cap_speed(thing.body)
        self._steps += 1
        scored = [thing for thing in self.objects if self._in_pocket(thing.body.position)]
        for thing in scored:
            self.space.remove(thing.body, thing.shape)
            self.objects.remove(thing)
        self._scored += len(scored)
        reward = float(len(scored))
        if self._dense:
            reward += len(scored) * max(0.0, DENSE_BONUS - self._steps / DENSE_STEPS)
        if self._shaping:
            potential = self.potential()
            reward += self._shaping * (potential - self._potential)
            self._potential = potential
        done = bool(scored) and not self.objects
        return self._obs(reward, is_last=done, is_terminal=done)

    def state(self):
        """The full state (module docstring), scaled to O(1)."""
        if self.space is None:
            raise RuntimeError('bbs: call reset() before state().')
        in_play = [thing if thing in self.objects else None for thing in self._shapes]
        shape_pos, shape_vel = self._kinematics(in_play, self._max_objects)
        present = np.zeros(self._max_objects)
        present[:len(in_play)] = [thing is not None for thing in in_play]
        agent_pos, agent_vel = self._kinematics([self.agent], 1)
        goal = (self.width + GOAL_WIDTH / 2, self.goal_y + self.goal_height / 2)
        state = {'agent_pos': agent_pos, 'agent_vel': agent_vel, 'shape_pos': shape_pos, 'shape_vel': shape_vel,
                 'shape_present': present, 'goal': self._scaled(goal)}
        if self._max_distractors:
            state['distractor_pos'], state['distractor_vel'] = self._kinematics(self.distractors, self._max_distractors)
            if self._variable_distractors:
                state['distractor_present'] = np.arange(self._max_distractors) < len(self.distractors)
        return spaces.state_vectors(state)

    def render(self, size):
        """The agent's view: the square of side 2 * agent_view_size centred on the agent, drawn at
        `size` (height, width), what lies outside the arena and the goal under a translucent grey."""
        keep = [(0.0, 0.0, self.width, self.length),
                (self.width, self.goal_y, self.width + GOAL_WIDTH, self.goal_y + self.goal_height)]
        return self._draw(self._view_window(), tuple(size), keep)

    def render_segmentation(self, size):
        """The ids (module docstring) of the agent's view as render(size) draws it: uint8 [H, W]."""
        height, width = size
        window = self._view_window()
        x0, y0, x1, y1 = window
        image = Image.new('L', (width, height), 0)
        # Shifted by half a pixel: PIL fills the pixels whose integer coordinates fall inside a
        # polygon, and the pixel (i, j) spans [i, i + 1) x [j, j + 1) here.
        self._draw_bodies(ImageDraw.Draw(image), window, width / (x1 - x0), height / (y1 - y0), -0.5,
                          lambda thing: thing.label)
        return np.asarray(image)

    def render_arena(self, size):
        """The whole arena with its walls, for humans: `size` is (height, width), or a height (the
        width then keeps the arena's aspect). What the agent does not see is under a translucent grey."""
        window = (-WALL, -WALL, self.width + WALL, self.length + WALL)
        if isinstance(size, numbers.Integral):
            size = (int(size), max(1, round(size * (window[2] - window[0]) / (window[3] - window[1]))))
        x, y = self.agent.body.position
        keep = [(x - self._view, y - self._view, x + self._view, y + self._view)]
        return self._draw(window, tuple(size), keep)

    def close(self):
        self.space = None

    def potential(self):
        """phi of the shaping reward (see the module's docstring); 0 once every shape is scored."""
        if not self.objects:
            return 0.0
        mouth = np.array([self.width, self.goal_y + self.goal_height / 2])
        centres = np.array([thing.body.position for thing in self.objects])
        to_agent = np.hypot(*(centres - np.array(self.agent.body.position)).T).min()
        return -float(to_agent + np.hypot(*(centres - mouth).T).sum()) / self.width

    # --- The scripted expert.

    def expert_action(self):
        """An action in [-1, 1]^2 that pushes the nearest remaining shape into the goal: circle
        round the shape to its side away from the goal, then push through it toward the goal."""
        if not self.objects:
            return np.array([-1, -1], np.float32)  # No force.
        agent = np.array(self.agent.body.position)
        if self._expert_target not in self.objects:
            distances = [np.hypot(*(np.array(thing.body.position) - agent)) for thing in self.objects]
            self._expert_target = self.objects[int(np.argmin(distances))]
        target = self._expert_target
        centre = np.array(target.body.position)
        goal = np.array([self.width + GOAL_WIDTH / 2, self.goal_y + self.goal_height / 2])
        ahead = goal - centre
        ahead /= np.linalg.norm(ahead) + 1e-9
        side = np.array([-ahead[1], ahead[0]])
        offset = agent - centre
        along, across = offset @ ahead, offset @ side
        reach = target.radius + AGENT_RADIUS + 4
        distance = np.hypot(along, across)
        # Polar angle of the agent around the shape, 0 on the goal side, +-pi right behind it.
        angle = math.atan2(across, along)
        behind = abs(angle) > math.pi - EXPERT['cone'] and distance < EXPERT['near'] * reach
        if behind:
            # Push: head through the shape's centre, steering back onto the line shape-goal.
            direction = ahead - side * np.clip(across / reach, -1, 1) * EXPERT['steer']
            velocity = EXPERT['push'] * direction / np.linalg.norm(direction)
        else:
            # Circle round at a safe radius toward the point behind the shape.
            turn = (1 if angle >= 0 else -1) * min(math.pi / 3, math.pi - abs(angle))
            radius = EXPERT['orbit'] * reach if abs(angle) < math.pi - 0.6 else reach
            goal_angle = angle + turn
            waypoint = centre + radius * (math.cos(goal_angle) * ahead + math.sin(goal_angle) * side)
            margin = AGENT_RADIUS + 2
            waypoint = np.clip(waypoint, margin, [self.width - margin, self.length - margin])
            gap = waypoint - agent
            speed = min(EXPERT['move'], 5.0 * np.linalg.norm(gap))
            velocity = speed * gap / (np.linalg.norm(gap) + 1e-9)
        # Force that closes most of the velocity error within a few steps: each step changes the
        # velocity by force * SUBSTEPS / mass * DT.
        force = 0.25 * (velocity - np.array(self.agent.body.velocity)) * AGENT_MASS / (SUBSTEPS * DT)
        magnitude = min(float(np.linalg.norm(force)), MAX_FORCE)
        direction = math.atan2(force[1], force[0]) % (2 * math.pi)
        return np.array([direction / math.pi - 1, magnitude / MAX_FORCE * 2 - 1], np.float32).clip(-1, 1)

    # --- Internals.

    def _state_space(self):
        objects, distractors = self._max_objects, self._max_distractors
        sizes = {'agent_pos': 2, 'agent_vel': 2, 'shape_pos': 2 * objects, 'shape_vel': 2 * objects,
                 'shape_present': objects, 'goal': 2}
        if distractors:  # A Box of no entries trips up some consumers: no keys rather than empty ones.
            sizes.update(distractor_pos=2 * distractors, distractor_vel=2 * distractors)
            if self._variable_distractors:
                sizes['distractor_present'] = distractors
        return {key: spaces.vector_space(size) for key, size in sizes.items()}

    def _scaled(self, position):
        return np.asarray(position, np.float64) / (self.width, self.length)

    def _kinematics(self, things, slots):
        """Scaled positions and velocities of `things` (None: an empty slot) in `slots` rows, zeros elsewhere."""
        position, velocity = np.zeros((slots, 2)), np.zeros((slots, 2))
        for row, thing in enumerate(things):
            if thing is not None:
                position[row], velocity[row] = self._scaled(thing.body.position), thing.body.velocity
        return position, velocity / MAX_SPEED

    def _obs(self, reward, **flags):
        obs = spaces.obs(reward, **flags)
        obs['success'] = bool(self._num_objects and self._scored == self._num_objects)
        obs['log_scored'] = np.int32(self._scored)
        return obs

    def _build_space(self):
        space = pymunk.Space()
        space.gravity = (0, 0)
        space.damping = DAMPING
        width, length, wall = self.width, self.length, WALL
        top, bottom = self.goal_y, self.goal_y + self.goal_height
        solid = pymunk.ShapeFilter(categories=CAT_WALL)
        for box in [(-wall, -wall, 0, length + wall),  # Left.
                    (-wall, -wall, width + wall, 0),  # Top.
                    (-wall, length, width + wall, length + wall)]:  # Bottom.
            space.add(self._static_box(space, box, solid))
        # The right wall is two sets of boxes. The shapes meet it with the goal cut out; the agent and
        # the distractors meet one whole box. (A pocket box abutting the walls beside the goal left a
        # seam along which a disc at full speed was pushed apart by both boxes, not back, and slid out.)
        for_shapes = pymunk.ShapeFilter(categories=CAT_WALL, mask=CAT_OBJECT)
        for box in [(width, -wall, width + wall, top),  # Above the goal.
                    (width, bottom, width + wall, length + wall),  # Below the goal.
                    (width + GOAL_WIDTH, top, width + wall, bottom)]:  # Behind the goal.
            space.add(self._static_box(space, box, for_shapes))
        for_discs = pymunk.ShapeFilter(categories=CAT_DISC_WALL, mask=CAT_AGENT | CAT_DISTRACTOR)
        space.add(self._static_box(space, (width, -wall, width + wall, length + wall), for_discs))
        self.space = space

    @staticmethod
    def _static_box(space, box, shape_filter):
        x0, y0, x1, y1 = box
        shape = pymunk.Poly(space.static_body, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        shape.friction, shape.elasticity, shape.filter = 0.5, 0.3, shape_filter
        return shape

    def _place(self, placed, radius, right):
        """A random centre in [radius, right - radius] x [radius, length - radius] at least 2 px
        clear of the bodies placed so far (rejection sampling); appends it to `placed`."""
        low = np.array([radius + 1, radius + 1])
        high = np.array([right - radius - 1, self.length - radius - 1])
        for _ in range(10_000):
            point = self._rng.uniform(low, high)
            if all(math.hypot(point[0] - x, point[1] - y) > radius + r + 2 for x, y, r in placed):
                placed.append((float(point[0]), float(point[1]), radius))
                return float(point[0]), float(point[1])
        raise RuntimeError('bbs: no free place left for a body; use fewer objects or distractors.')

    def _add_agent(self, position):
        body = pymunk.Body(AGENT_MASS, pymunk.moment_for_circle(AGENT_MASS, 0, AGENT_RADIUS))
        body.position = position
        shape = pymunk.Circle(body, AGENT_RADIUS)
        shape.friction, shape.elasticity = 0.5, 0.3
        shape.filter = pymunk.ShapeFilter(categories=CAT_AGENT)
        self.space.add(body, shape)
        return Thing(body, shape, None, AGENT_COLOUR, 'agent', AGENT_ID)

    def _add_poly(self, vertices, mass, position, angle, colour, kind, category, label):
        points = [tuple(map(float, point)) for point in vertices]
        body = pymunk.Body(mass, pymunk.moment_for_poly(mass, points))
        body.position, body.angle = position, angle
        shape = pymunk.Poly(body, points)
        shape.friction, shape.elasticity = 0.5, 0.3
        shape.filter = pymunk.ShapeFilter(categories=category)
        self.space.add(body, shape)
        return Thing(body, shape, vertices, colour, kind, label)

    def _push_distractors(self):
        for thing in self.distractors:
            if thing.hold == 0:
                angle, force = self._rng.uniform((0, 0), (2 * math.pi, DISTRACTOR_FORCE))
                thing.hold = int(self._rng.integers(DISTRACTOR_HOLD[0], DISTRACTOR_HOLD[1] + 1))
                force *= SUBSTEPS
                thing.force = (float(force * math.cos(angle)), float(force * math.sin(angle)))
            thing.hold -= 1
            thing.body.apply_force_at_world_point(thing.force, thing.body.position)

    def _in_pocket(self, position):
        """The centre is past the right wall's face within the mouth (not sunk into the wall beside it)."""
        x, y = position
        return x > self.width and self.goal_y <= y <= self.goal_y + self.goal_height

    @staticmethod
    def _cap_speed(body):
        vx, vy = body.velocity
        speed = math.hypot(vx, vy)
        if speed > MAX_SPEED:
            body.velocity = (vx * MAX_SPEED / speed, vy * MAX_SPEED / speed)

    def _view_window(self):
        """The agent's view in world coordinates (x0, y0, x1, y1)."""
        x, y = self.agent.body.position
        return x - self._view, y - self._view, x + self._view, y + self._view

    def _draw_bodies(self, draw, window, sx, sy, shift, fill):
        """The shapes and distractors, then the agent on top, onto `draw` at pixel coordinates
        (world - window corner) * scale + shift, each filled with fill(thing)."""
        x0, y0, x1, y1 = window
        for thing in self.objects + self.distractors:
            px, py = thing.body.position
            if not (x0 - BODY_MARGIN < px < x1 + BODY_MARGIN and y0 - BODY_MARGIN < py < y1 + BODY_MARGIN):
                continue
            cos, sin = thing.body.rotation_vector
            xs = px + cos * thing.vertices[:, 0] - sin * thing.vertices[:, 1]
            ys = py + sin * thing.vertices[:, 0] + cos * thing.vertices[:, 1]
            points = zip(((xs - x0) * sx + shift).tolist(), ((ys - y0) * sy + shift).tolist())
            draw.polygon(list(points), fill=fill(thing))
        px, py = self.agent.body.position
        draw.ellipse(((px - AGENT_RADIUS - x0) * sx + shift, (py - AGENT_RADIUS - y0) * sy + shift,
                      (px + AGENT_RADIUS - x0) * sx + shift, (py + AGENT_RADIUS - y0) * sy + shift),
                     fill=fill(self.agent))

    def _draw(self, window, size, keep):
        """The world inside `window` (x0, y0, x1, y1) drawn at `size` (height, width), with a
        translucent grey over all but the rectangles `keep` (disjoint, world coordinates)."""
        height, width = size
        x0, y0, x1, y1 = window
        sx, sy = SUPERSAMPLE * width / (x1 - x0), SUPERSAMPLE * height / (y1 - y0)
        image = Image.new('RGB', (SUPERSAMPLE * width, SUPERSAMPLE * height), WALL_COLOUR)
        draw = ImageDraw.Draw(image)

        def rect(a, b, c, d, colour):
            left, top = max((a - x0) * sx, -1.0), max((b - y0) * sy, -1.0)
            right, bottom = min((c - x0) * sx, image.width + 1.0), min((d - y0) * sy, image.height + 1.0)
            if right > left and bottom > top:
                draw.rectangle((left, top, max(left, right - 1), max(top, bottom - 1)), fill=colour)

        rect(0, 0, self.width, self.length, FLOOR)
        rect(self.width, self.goal_y, self.width + GOAL_WIDTH, self.goal_y + self.goal_height, GOAL_COLOUR)
        self._draw_bodies(draw, window, sx, sy, 0.0, lambda thing: thing.colour)
        if SUPERSAMPLE > 1:
            image = image.reduce(SUPERSAMPLE)
        frame = np.asarray(image, np.float32)
        # Fraction of each pixel inside the kept rectangles, from their overlap along each axis.
        cols = x0 + (x1 - x0) / width * np.arange(width + 1)
        rows = y0 + (y1 - y0) / height * np.arange(height + 1)
        inside = np.zeros((height, width), np.float32)
        for a, b, c, d in keep:
            col = np.clip(np.minimum(cols[1:], c) - np.maximum(cols[:-1], a), 0, None) / np.diff(cols)
            row = np.clip(np.minimum(rows[1:], d) - np.maximum(rows[:-1], b), 0, None) / np.diff(rows)
            inside += row[:, None].astype(np.float32) * col[None, :].astype(np.float32)
        alpha = (OVERLAY_ALPHA * (1 - np.minimum(inside, 1)))[..., None]
        return (frame + alpha * (OVERLAY - frame) + 0.5).astype(np.uint8)


def _check_int(name, value, low, high):
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)) or not low <= value <= high:
        raise ValueError(f'bbs {name}={value!r} must be an int in {low}..{high}.')


def _check_number(name, value, low, allowed, inclusive=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    if not ok or value < low or (value == low and not inclusive):
        raise ValueError(f'bbs {name}={value!r} must be {allowed}.')
