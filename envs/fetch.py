"""Multi-object Fetch (the tasks of SOLD's multi-object-fetch): `fetch_<Family><Rule>_<k>Distractors_<Reward>`.

Family: Reach (bring the gripper to the target sphere), Push (push the target block to the goal;
the fingers stay closed) or Pick (grasp the target block and bring it to the goal, which is lifted
into the air in half of the episodes). Rule: which colours the target and the k distractors get,
from the 16 colours of PALETTE (from pixels, the rule is how the agent tells the target):
  Red        the target is pure red, each distractor any other palette colour;
  Reddest    k + 1 distinct colours; the target has the one closest to red (CIEDE2000);
  Odd        the target has colour a, every distractor colour b != a (k >= 2);
  OddGroups  the target has colour a, the distractors alternate b and c (a, b, c distinct; k >= 4).
k is 0..4 distractors, or `<A>to<B>Distractors` draws k uniformly in A..B at each reset. Reward:
Sparse is -1 per env step unless the task is solved (then 0); Dense is exp(-20 |grip - target|) for
Reach and 0.9 exp(-20 |block - goal|) + 0.1 exp(-10 |block - grip|) for Push and Pick. Solved
(`success` in the obs) means the distance measured by the first term is below 0.05 m. Episodes do
not end on success: the time limit is the wrappers'; Fetch's is 50 (Reach) or 100 (Push, Pick)
agent steps at action repeat 2, i.e. time_limit = FRAMES[family] env frames.

Actions are Box(-1, 1, (4,)): the first three move the mocap body that drags the gripper by
STEP m each per env step (clipped to the workspace above the table), the fourth sets the fingers'
opening from closed (-1) to fully open (+1); Push ignores it. An env step is SUBSTEPS physics steps
of 2 ms. The scene is envs/fetch_model.py's MJCF, rendered by MuJoCo from the front camera.

State (envs.make(..., obs='state')): world coordinates in metres (the table's centre is at (1.3,
0.75), its top at z = 0.4) and velocities in m/s, unscaled since they are O(1) already; n = B + 1
object slots for a task of up to B distractors, slot 0 the target (so the colour rule is moot in
state mode), then the distractors. Slots of objects not in this episode are zeros.
  gripper_pos, gripper_vel   3 each: the `grip` site between the fingertips
  finger_width               1: the gap between the fingers' inner faces (Push: fixed at FINGER_GAP)
  object_pos                 3 n: the objects' centres
  goal                       3: where the target must go (Reach: the target sphere's centre)
  object_vel, object_quat    Push and Pick only (Reach's spheres never move): 3 n linear velocities and
                             4 n orientations as unit quaternions (w, x, y, z); zero quaternions in empty slots
  object_present             n, only for <A>to<B> tasks: 1 for the objects of this episode, else 0

Segmentation (envs.make(..., segmentation=True)): MuJoCo's segmentation render from the front
camera, by body: the gripper (hand, wrist and fingers) GRIPPER_ID, object i (0 the target) OBJECT_IDS[i]
(2 + i, the state's slot), Push and Pick's goal marker GOAL_ID; the table, the floor and the sky 0.

All randomness comes from one np.random.default_rng(seed): the same seed gives the same episodes
bit for bit, and each reset() continues the stream. Building and stepping the env is safe in a
process that has imported TensorFlow; rendering is not (render() refuses). `python -m envs.fetch
--help` runs the scripted expert against random actions, measures speed and draws frame strips.
"""

import math
import re

import gymnasium as gym
import mujoco
import numpy as np

from envs import fetch_model as scene
from envs import rendering, spaces

FAMILIES = ('Reach', 'Push', 'Pick')
RULES = ('Red', 'Reddest', 'Odd', 'OddGroups')
MIN_DISTRACTORS = {'Red': 0, 'Reddest': 0, 'Odd': 2, 'OddGroups': 4}
MAX_DISTRACTORS = scene.MAX_OBJECTS - 1
FRAMES = {'Reach': 100, 'Push': 200, 'Pick': 200}  # Fetch's episode lengths at action repeat 2.
ACTION_REPEAT = 2
STEP = 0.05  # Metres the mocap moves per env step under a unit action.
SUBSTEPS = 20
SUCCESS_DISTANCE = 0.05
OBJECT_RANGE = 0.15  # Objects and goals lie within this of the gripper's start, per axis.
MIN_SPHERE_GAP = 0.08  # Between the centres of Reach spheres.
MIN_BLOCK_GAP = 2 * math.sqrt(2) * scene.BLOCK_HALF + 0.02  # Between block centres (xy): never touching.
MIN_GOAL_GAP = 0.04 + math.sqrt(2) * scene.BLOCK_HALF  # From the goal to every block's centre (xy).
MAX_LIFT, LIFT_PROBABILITY = 0.3, 0.5  # Pick: goals are lifted by U(0, MAX_LIFT) this often.
# The mocap (and so the grip) stays in this box: over the table and 0.1 m beyond its sides, fingertips
# not below its top.
WORKSPACE = (np.array([0.95, 0.30, scene.TABLE_TOP + 0.03]), np.array([1.65, 1.20, 0.85]))

# The 16 colours of the VGA / HTML 4 palette, 0..255 RGB.
PALETTE = {
    'black': (0, 0, 0), 'maroon': (128, 0, 0), 'green': (0, 128, 0), 'olive': (128, 128, 0),
    'navy': (0, 0, 128), 'purple': (128, 0, 128), 'teal': (0, 128, 128), 'silver': (192, 192, 192),
    'gray': (128, 128, 128), 'red': (255, 0, 0), 'lime': (0, 255, 0), 'yellow': (255, 255, 0),
    'blue': (0, 0, 255), 'fuchsia': (255, 0, 255), 'aqua': (0, 255, 255), 'white': (255, 255, 255),
}
COLOUR_NAMES = tuple(PALETTE)

TASK_PATTERN = re.compile(r'(Reach|Push|Pick)(Red|Reddest|Odd|OddGroups)_(\d+)(?:to(\d+))?Distractors_(Sparse|Dense)')
NAMES_HELP = ('names are fetch_{Reach,Push,Pick}{Red,Reddest,Odd,OddGroups}_{k}Distractors_{Sparse,Dense} '
              f'with k in 0..{MAX_DISTRACTORS}, or _{{A}}to{{B}}Distractors_ to draw k in A..B per episode')

# The scripted expert: it moves the mocap toward its waypoint by EXPERT_GAIN of the error per env
# step (capped at a unit action), pushes at PUSH_SPEED and travels between places at SAFE_Z.
EXPERT_GAIN = 0.4
PUSH_SPEED = 0.5
CARRY_SPEED = 0.5
SAFE_Z = scene.TABLE_TOP + 2 * scene.BLOCK_HALF + 0.07  # Fingertips clear a block's top by 0.04 m.
PUSH_Z = scene.TABLE_TOP + 0.04
BEHIND = math.sqrt(2) * scene.BLOCK_HALF + scene.FINGER_HALF[0] + 0.01  # Grip to block centre before a push.
HOLD = 0.015  # Push: the expert stops once the block is this close to the goal.

# Segmentation ids (0: the table, floor and sky).
GRIPPER_ID = 1
OBJECT_IDS = tuple(range(2, 2 + scene.MAX_OBJECTS))
GOAL_ID = OBJECT_IDS[-1] + 1


def parse_task(task):
    """'PushRed_0to4Distractors_Dense' -> ('Push', 'Red', 0, 4, True); ValueError (one line) otherwise."""
    match = TASK_PATTERN.fullmatch(task)
    if not match:
        raise ValueError(f"Unknown fetch task 'fetch_{task}'; {NAMES_HELP}.")
    family, rule, low, high, reward = match.groups()
    low = int(low)
    high = low if high is None else int(high)
    if high > MAX_DISTRACTORS:
        raise ValueError(f"fetch_{task}: at most {MAX_DISTRACTORS} distractors (got {high}); {NAMES_HELP}.")
    if low > high:
        raise ValueError(f'fetch_{task}: {low}to{high} is an empty range; write AtoB with A <= B.')
    need = MIN_DISTRACTORS[rule]
    if low < need:
        raise ValueError(f'fetch_{task}: {rule} needs k >= {need} distractors (got {low}); '
                         f'use {need}..{MAX_DISTRACTORS}.')
    return family, rule, low, high, reward == 'Dense'


# --- Colours.

def srgb_to_lab(rgb):
    """CIE L*a*b* (D65) of sRGB colours given as 0..255 values, shape [..., 3]."""
    value = np.asarray(rgb, np.float64) / 255
    linear = np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    delta = 6 / 29
    f = np.where(xyz > delta ** 3, np.cbrt(xyz), xyz / (3 * delta ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def ciede2000(lab1, lab2):
    """The CIEDE2000 colour difference (kL = kC = kH = 1) of L*a*b* colours, broadcast over [..., 3]."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    chroma = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(chroma ** 7 / (chroma ** 7 + 25.0 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1 = np.degrees(np.arctan2(b1, a1)) % 360
    h2 = np.degrees(np.arctan2(b2, a2)) % 360
    grey = c1 * c2 == 0  # A hue is undefined: no hue difference, and the mean hue is the sum.
    dh = h2 - h1
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(grey, 0.0, dh)
    d_hue = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh) / 2)
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    h_sum = h1 + h2
    h_mean = np.where(np.abs(h1 - h2) <= 180, h_sum / 2,
                      np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_mean = np.where(grey, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    rotation = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * c_mean
    s_h = 1 + 0.015 * c_mean * t
    r_t = -np.sin(np.radians(2 * rotation)) * r_c
    dl, dc, dhh = (l2 - l1) / s_l, (c2 - c1) / s_c, d_hue / s_h
    return np.sqrt(dl ** 2 + dc ** 2 + dhh ** 2 + r_t * dc * dhh)


REDNESS = dict(zip(COLOUR_NAMES, ciede2000(srgb_to_lab([PALETTE[name] for name in COLOUR_NAMES]),
                                           srgb_to_lab(PALETTE['red'])).tolist()))


def draw_colours(rule, distractors, rng):
    """Palette names of the target (first) and the distractors under `rule`."""
    names = COLOUR_NAMES
    if rule == 'Red':
        others = [name for name in names if name != 'red']
        return ['red'] + [others[i] for i in rng.integers(len(others), size=distractors)]
    if rule == 'Reddest':
        chosen = [names[i] for i in rng.choice(len(names), distractors + 1, replace=False)]
        target = min(chosen, key=REDNESS.get)
        chosen.remove(target)
        return [target] + chosen
    if rule == 'Odd':
        target, other = (names[i] for i in rng.choice(len(names), 2, replace=False))
        return [target] + [other] * distractors
    target, first, second = (names[i] for i in rng.choice(len(names), 3, replace=False))
    return [target] + [(first, second)[i % 2] for i in range(distractors)]


class Fetch:
    """One Fetch task (module docstring). Besides the env interface it exposes the state the tests
    and the expert use: grip, mocap, position(i) (object 0 is the target), goal, finger_opening(),
    reward(), success(), and per episode `distractors` (k) and `colours` (palette names, target first)."""

    def __init__(self, task, seed=0):
        self.task = task
        self.family, self.rule, self._low, self._high, self._dense = parse_task(task)
        self.model = mujoco.MjModel.from_xml_string(scene.xml(self.family))
        self.data = mujoco.MjData(self.model)
        body = lambda name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        self._mocap = self.model.body_mocapid[body('mocap')]
        self._grip = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, 'grip')
        self._hand_qpos = self.model.jnt_qposadr[self.model.body_jntadr[body('hand')]]
        joints = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, f'finger_{side}')
                  for side in ('left', 'right')] if self.family != 'Push' else []  # Push: fixed fingers.
        self._fingers = [self.model.jnt_qposadr[joint] for joint in joints]
        self._finger_dofs = [self.model.jnt_dofadr[joint] for joint in joints]
        self._objects = [body(f'object{i}') for i in range(scene.MAX_OBJECTS)]
        self._object_geoms = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f'object{i}')
                              for i in range(scene.MAX_OBJECTS)]
        self._goal = None if self.family == 'Reach' else self.model.body_mocapid[body('goal')]
        self._geom_ids = self._segmentation_ids(body)
        self._rng = np.random.default_rng(seed)
        self._renderers = {}
        self._started = False
        self._phase, self._waited = 'reach', 0  # The expert's memory (Pick): reach, close or carry.
        self.colours, self.distractors = [], 0
        self.obs_space = {**spaces.obs_space(), 'success': gym.spaces.Box(0, 1, (), bool)}
        self.act_space = {'action': gym.spaces.Box(-1, 1, (4,), np.float32)}
        self.state_space = {key: spaces.vector_space(np.size(value)) for key, value in self._state().items()}

    # --- The env interface.

    def reset(self):
        rng = self._rng
        self.distractors = int(rng.integers(self._low, self._high + 1))
        count = self.distractors + 1
        self.colours = draw_colours(self.rule, self.distractors, rng)
        mujoco.mj_resetData(self.model, self.data)
        start = np.array(scene.GRIP_START)
        self.data.mocap_pos[self._mocap] = start
        self.data.qpos[self._hand_qpos:self._hand_qpos + 7] = [*start, 1, 0, 0, 0]
        if self.family == 'Reach':
            positions = self._place_spheres(count)
        else:
            positions, goal = self._place_blocks(count)
            self.data.mocap_pos[self._goal] = goal
        for index, body in enumerate(self._objects):
            if index < count:
                position, rgb = positions[index], np.array(PALETTE[self.colours[index]]) / 255
            else:  # Out of sight, resting on the floor.
                position = np.add(scene.PARK, (0, 0.3 * index, 0))
                position[2] = scene.BLOCK_HALF
                rgb = np.ones(3)
            self.model.geom_rgba[self._object_geoms[index]] = [*rgb, 1]
            if self.family == 'Reach':
                self.data.mocap_pos[self.model.body_mocapid[body]] = position
            else:
                address = self.model.jnt_qposadr[self.model.body_jntadr[body]]
                self.data.qpos[address:address + 7] = [*position, 1, 0, 0, 0]
        mujoco.mj_forward(self.model, self.data)
        self._started, self._phase = True, 'reach'
        return self._obs(0.0, is_first=True)

    def step(self, action):
        if not self._started:
            raise RuntimeError('fetch: call reset() before step().')
        action = spaces.checked_action(action, (4,), 'fetch')
        action = np.clip(action, -1, 1)
        mocap = self.data.mocap_pos[self._mocap] + STEP * action[:3]
        self.data.mocap_pos[self._mocap] = np.clip(mocap, *WORKSPACE)
        self.data.ctrl[:] = (action[3] + 1) / 2 * scene.FINGER_TRAVEL  # None in Push.
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        return self._obs(self.reward())

    def render(self, size):
        return self._renderer(size).render().copy()

    def render_segmentation(self, size):
        """uint8 [H, W] ids (module docstring) of what render(size) shows."""
        renderer = self._renderer(size)
        renderer.enable_segmentation_rendering()
        try:
            drawn = renderer.render()  # (object id, object type) per pixel, -1 where nothing is.
        finally:
            renderer.disable_segmentation_rendering()
        ids, types = drawn[..., 0], drawn[..., 1]
        return np.where(types == mujoco.mjtObj.mjOBJ_GEOM, self._geom_ids[np.maximum(ids, 0)], 0).astype(np.uint8)

    def state(self):
        if not self._started:
            raise RuntimeError('fetch: call reset() before state().')
        return spaces.state_vectors(self._state())

    def close(self):
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}

    def _renderer(self, size):
        """The renderer of `size`, its scene updated to the current state from the front camera."""
        rendering.check_render_allowed()
        size = (int(size[0]), int(size[1]))
        if size not in self._renderers:
            # The offscreen buffer is made at the size asked for (a larger one costs time to clear).
            self.model.vis.global_.offheight, self.model.vis.global_.offwidth = size
            self._renderers[size] = mujoco.Renderer(self.model, *size)
        renderer = self._renderers[size]
        renderer.update_scene(self.data, camera='front')
        return renderer

    def _segmentation_ids(self, body):
        """The segmentation id of every geom (module docstring), by the body it belongs to."""
        ids = np.zeros(self.model.ngeom, np.uint8)
        owner = self.model.geom_bodyid
        ids[owner == body('hand')] = GRIPPER_ID
        for side in ('left', 'right'):
            ids[owner == body(f'finger_{side}')] = GRIPPER_ID
        for index, object_body in enumerate(self._objects):
            ids[owner == object_body] = OBJECT_IDS[index]
        if self._goal is not None:
            ids[owner == body('goal')] = GOAL_ID
        return ids

    # --- State, rewards, success.

    @property
    def grip(self):
        return self.data.site_xpos[self._grip].copy()

    @property
    def mocap(self):
        return self.data.mocap_pos[self._mocap].copy()

    def position(self, index=0):
        """Centre of object `index` (0: the target)."""
        return self.data.xpos[self._objects[index]].copy()

    @property
    def goal(self):
        """Where the target must go: the goal marker (Push, Pick) or the target sphere (Reach)."""
        return self.position(0) if self._goal is None else self.data.mocap_pos[self._goal].copy()

    def finger_opening(self):
        """Each finger's travel outward from closed, m (Push: none, its fingers are fixed)."""
        return self.data.qpos[self._fingers].copy()

    def success(self):
        moved = self.grip if self.family == 'Reach' else self.position(0)
        return bool(np.linalg.norm(moved - self.goal) < SUCCESS_DISTANCE)

    def reward(self):
        """The reward of the current state (module docstring)."""
        if not self._dense:
            return 0.0 if self.success() else -1.0
        if self.family == 'Reach':
            return float(np.exp(-20 * np.linalg.norm(self.grip - self.position(0))))
        block = self.position(0)
        return float(0.9 * np.exp(-20 * np.linalg.norm(block - self.goal))
                     + 0.1 * np.exp(-10 * np.linalg.norm(block - self.grip)))

    def _obs(self, reward, **flags):
        obs = spaces.obs(reward, **flags)
        obs['success'] = self.success()
        return obs

    def _state(self):
        """The state (module docstring) as float64 arrays; its sizes are fixed per task, so that the
        state space is read off the state of the freshly built model."""
        slots = self._high + 1
        present = np.arange(slots) < self.distractors + 1 if self._started else np.zeros(slots, bool)
        objects = self._objects[:slots]
        state = {'gripper_pos': self.grip, 'gripper_vel': self._velocity(mujoco.mjtObj.mjOBJ_SITE, self._grip),
                 'finger_width': scene.FINGER_GAP + self.finger_opening().sum(),
                 'object_pos': self.data.xpos[objects] * present[:, None],
                 'goal': self.goal}
        if self.family != 'Reach':
            state['object_vel'] = np.array([self._velocity(mujoco.mjtObj.mjOBJ_BODY, body) for body in objects])
            state['object_vel'] *= present[:, None]
            state['object_quat'] = self.data.xquat[objects] * present[:, None]
        if self._low < self._high:
            state['object_present'] = present
        return state

    def _velocity(self, kind, index):
        """Linear velocity in the world frame of a site or body, from the last forward pass (as the positions)."""
        velocity = np.zeros(6)  # Rotational, then linear.
        mujoco.mj_objectVelocity(self.model, self.data, kind, index, velocity, 0)
        return velocity[3:]

    # --- Layouts.

    def _place_spheres(self, count):
        """Centres of `count` spheres: around the gripper's start, above the table, apart."""
        low_z = scene.TABLE_TOP + scene.SPHERE_RADIUS
        for _ in range(1000):
            centres = []
            for _ in range(100 * count):
                point = np.array(scene.GRIP_START) + self._rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, 3)
                if point[2] >= low_z and all(np.linalg.norm(point - other) >= MIN_SPHERE_GAP for other in centres):
                    centres.append(point)
                    if len(centres) == count:
                        return centres
        raise RuntimeError('fetch: could not place the spheres.')

    def _place_blocks(self, count):
        """Centres of `count` blocks resting on the table, apart, and the goal away from them all."""
        centre = np.array(scene.GRIP_START[:2])
        z = scene.TABLE_TOP + scene.BLOCK_HALF
        for _ in range(1000):
            spots = []
            for _ in range(100 * count):
                spot = centre + self._rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, 2)
                if all(np.linalg.norm(spot - other) >= MIN_BLOCK_GAP for other in spots):
                    spots.append(spot)
                    if len(spots) == count:
                        break
            if len(spots) < count:
                continue
            for _ in range(100):
                goal = centre + self._rng.uniform(-OBJECT_RANGE, OBJECT_RANGE, 2)
                if all(np.linalg.norm(goal - spot) >= MIN_GOAL_GAP for spot in spots):
                    height = z
                    if self.family == 'Pick' and self._rng.uniform() < LIFT_PROBABILITY:
                        height += self._rng.uniform(0, MAX_LIFT)
                    return [np.array([*spot, z]) for spot in spots], np.array([*goal, height])
        raise RuntimeError('fetch: could not place the blocks and the goal.')

    # --- The scripted expert.

    def expert_action(self):
        """An action in [-1, 1]^4 of a scripted policy with access to the state. Reach: move to the
        target. Push: above the block, down behind it (seen from the goal), push it toward the goal.
        Pick: open, above the block, down around it, close, carry it to the goal."""
        if self.family == 'Reach':
            return self._toward(self.position(0), -1.0)
        if self.family == 'Push':
            return self._push()
        return self._pick()

    def _toward(self, target, fingers, speed=1.0):
        move = EXPERT_GAIN * (np.asarray(target) - self.mocap) / STEP
        largest = np.abs(move).max()
        if largest > speed:
            move *= speed / largest
        return np.array([*move, fingers], np.float32).clip(-1, 1)

    def _push(self):
        grip, block, goal = self.grip, self.position(0), self.goal
        ahead = goal[:2] - block[:2]
        distance = np.linalg.norm(ahead)
        if distance < HOLD:
            return np.array([0, 0, 0, -1], np.float32)  # Well inside the goal: stay, lest it slide on.
        ahead /= distance
        side = np.array([-ahead[1], ahead[0]])
        offset = grip[:2] - block[:2]
        along, across = offset @ ahead, offset @ side
        behind = block[:2] - BEHIND * ahead
        low = grip[2] < PUSH_Z + 0.02
        if low and -BEHIND - 0.03 < along < -0.03 and abs(across) < 0.02:
            # Push: toward where the grip is once the block sits on the goal, on the line block-goal.
            return self._toward([*(goal[:2] + along * ahead), PUSH_Z], -1.0, PUSH_SPEED)
        clear = along < -(math.sqrt(2) * scene.BLOCK_HALF + scene.FINGER_HALF[0] + 0.003)
        if np.linalg.norm(grip[:2] - behind) < 0.015 or (low and clear):
            return self._toward([*behind, PUSH_Z], -1.0)  # Down behind the block (or along behind it).
        if grip[2] < SAFE_Z - 0.02:
            reach = np.linalg.norm(offset)
            if low and reach < BEHIND + 0.02:  # Back off the block first: rising along its face would tip it.
                return self._toward([*(block[:2] + offset / reach * (BEHIND + 0.04)), grip[2]], -1.0)
            return self._toward([*grip[:2], SAFE_Z], -1.0)  # Up first, clear of every block.
        return self._toward([*behind, SAFE_Z], -1.0)

    def _pick(self):
        grip, block, goal = self.grip, self.position(0), self.goal
        fingers = self.finger_opening()
        if self._phase != 'reach' and (np.linalg.norm(grip - block) > 0.07 or fingers.max() < 0.5 * scene.BLOCK_HALF):
            self._phase = 'reach'  # Missed or dropped it: start over.
        if self._phase == 'reach':
            off = np.linalg.norm(block[:2] - grip[:2])
            if off < 0.01 and abs(grip[2] - block[2]) < 0.01:
                self._phase, self._waited = 'close', 0
            else:
                opened = fingers.min() > 0.8 * scene.FINGER_TRAVEL
                if off < 0.015 and opened:
                    return self._toward(block, 1.0)  # Down around the block.
                if grip[2] < SAFE_Z - 0.02 and off >= 0.015:
                    return self._toward([*grip[:2], SAFE_Z], 1.0)  # Up first, clear of every block.
                return self._toward([*block[:2], SAFE_Z], 1.0)
        if self._phase == 'close':
            speeds = np.abs(self.data.qvel[self._finger_dofs])
            settled = fingers.max() < scene.BLOCK_HALF + 0.005 and speeds.max() < 0.05
            self._waited += 1
            if not settled and self._waited < 4:
                return np.array([0, 0, 0, -1], np.float32)  # Hold still while closing.
            self._phase = 'carry'
        held = grip - block
        target = goal + held
        if np.linalg.norm(goal[:2] - block[:2]) > 0.03:  # Carry clear of the table.
            target[2] = max(target[2], scene.TABLE_TOP + scene.BLOCK_HALF + 0.04 + held[2])
        return self._toward(target, -1.0, CARRY_SPEED)


# --- Command line: expert vs random, speed, frame strip (in this process, which must not hold TensorFlow).

def _make(task, seed, size=(64, 64)):
    """The task through envs.make with Fetch's episode length at action repeat 2, in this process."""
    import envs
    family = parse_task(task)[0]
    return envs.make(f'fetch_{task}', seed=seed, size=size, action_repeat=ACTION_REPEAT,
                     time_limit=FRAMES[family], parallel=False)


def report(task, episodes):
    """{policy: (mean return, std, success rate)} of the expert and uniform random actions over
    seeds 0..episodes-1; success is that of the episode's last step."""
    result = {}
    for policy in ('expert', 'random'):
        returns, successes = [], []
        for seed in range(episodes):
            env, rng = _make(task, seed), np.random.default_rng(seed)
            obs, total = env.reset(), 0.0
            while not obs['is_last']:
                action = env.expert_action() if policy == 'expert' else rng.uniform(-1, 1, 4).astype(np.float32)
                obs = env.step(action)
                total += float(obs['reward'])
            env.close()
            returns.append(total)
            successes.append(obs['success'])
        result[policy] = (float(np.mean(returns)), float(np.std(returns)), float(np.mean(successes)))
    return result


def speed(task, steps):
    """Agent steps per second of random actions through envs.make (64x64 images, action repeat 2)."""
    import time
    env, rng = _make(task, 0), np.random.default_rng(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        if env.step(rng.uniform(-1, 1, 4).astype(np.float32))['is_last']:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


STRIP_RULES = (('Red', 0), ('Red', 4), ('Reddest', 4), ('Odd', 4), ('OddGroups', 4))


def frame_strip(size=96, seed=0):
    """Rows Reach, Push, Pick (seeds seed, seed + 1, seed + 2); columns the first frame of Red with 0
    distractors, then Red, Reddest, Odd and OddGroups with 4, then the scripted expert's last frame
    of the OddGroups episode."""
    gap = 4
    rows = []
    for row, family in enumerate(FAMILIES):
        frames = []
        for rule, count in STRIP_RULES:
            env = _make(f'{family}{rule}_{count}Distractors_Dense', seed + row, (size, size))
            obs = env.reset()
            frames.append(obs['image'])
        while not obs['is_last']:
            obs = env.step(env.expert_action())
        frames.append(obs['image'])
        env.close()
        white = np.full((size, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([part for frame in frames for part in (frame, white)][:-1], 1))
    white = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (row, white)][:-1], 0)


def _main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(
        prog='python -m envs.fetch', description='Fetch tasks: scripted expert vs random actions, speed, frame strip.')
    parser.add_argument('--tasks', nargs='+', default=['ReachRed_0to4Distractors_Dense', 'PushRed_0to4Distractors_Dense',
                                                       'PickRed_0to4Distractors_Dense'],
                        help='tasks, with or without the fetch_ prefix')
    parser.add_argument('--report', type=int, metavar='N', help='run N seeds of the expert and of random actions')
    parser.add_argument('--speed', type=int, metavar='STEPS', help='time STEPS agent steps of each task')
    parser.add_argument('--strip', metavar='PNG', help='write the frame strip (docs/fetch_frames.png) there')
    parser.add_argument('--size', type=int, default=96, help="side in px of the strip's frames")
    args = parser.parse_args(argv)
    tasks = [task.removeprefix('fetch_') for task in args.tasks]
    try:
        for task in tasks:
            parse_task(task)
    except ValueError as error:
        parser.error(str(error))
    if not (args.report or args.speed or args.strip):
        parser.error('give --report N, --speed STEPS or --strip PNG')
    if args.report:
        print(f'| task ({args.report} seeds, action repeat {ACTION_REPEAT}) | expert return | expert success '
              '| random return | random success |\n|---|---|---|---|---|')
        for task in tasks:
            result = report(task, args.report)
            print(f'| `fetch_{task}` | ' + ' | '.join(f'{mean:.1f} ± {std:.1f} | {rate:.0%}'
                                                     for mean, std, rate in result.values()) + ' |', flush=True)
    if args.speed:
        for task in tasks:
            print(f'fetch_{task}: {speed(task, args.speed):.0f} agent steps/s (64x64, action repeat {ACTION_REPEAT})',
                  flush=True)
    if args.strip:
        from PIL import Image
        Image.fromarray(frame_strip(args.size)).save(args.strip)
        print(args.strip)


if __name__ == '__main__':
    _main()
