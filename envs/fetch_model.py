"""The MJCF scene of the fetch suite (envs/fetch.py), built as a string per task family.

World frame as in the Fetch robotics tasks (metres): the table is centred at (1.3, 0.75) with its
top at z = 0.4, y runs across it, z up; the camera stands at larger x and looks back along -x.
Only a gripper is simulated: a `hand` body with a free joint, held by a weld to the mocap body
`mocap` (the action moves the mocap; the soft weld drags the hand along and lets contacts push
back), with gravity compensated so that it hangs where it is told. Two fingers slide across y under
the palm, each driven by a position actuator (in Push they have no joints: fixed, closed); the site
`grip` marks the point between the fingertips that the rewards measure from.

Reach scenes hold MAX_OBJECTS non-colliding spheres on mocap bodies (`object0`...); Push and Pick
scenes hold MAX_OBJECTS blocks with free joints (`object0`...) and a non-colliding goal marker on
the mocap body `goal`. Objects a task does not use this episode are parked out of sight (PARK).
"""

import numpy as np

TABLE_POS, TABLE_HALF = (1.3, 0.75, 0.2), (0.25, 0.35, 0.2)
TABLE_TOP = TABLE_POS[2] + TABLE_HALF[2]
GRIP_START = (1.3, 0.75, 0.55)  # Where the grip site starts each episode.
CAMERA_POS, CAMERA_LOOK_AT, CAMERA_FOVY = (1.9, 0.75, 0.8), (1.3, 0.75, 0.48), 60
MAX_OBJECTS = 5  # The target and up to 4 distractors.
SPHERE_RADIUS = 0.04
BLOCK_HALF, BLOCK_MASS = 0.045, 2.0
GOAL_RADIUS = 0.025
# Fingers: boxes of these half sizes whose inner faces are FINGER_GAP / 2 from the grip's centre
# plane when closed; each slides outward by up to FINGER_TRAVEL.
FINGER_HALF = (0.018, 0.008, 0.045)
FINGER_GAP, FINGER_TRAVEL = 0.004, 0.06
FINGER_Z = 0.015  # Finger centres above the grip site (fingertips 0.03 below it).
FINGER_KP, FINGER_FRICTION = 2000.0, 1.5
# A heavy armature (virtual mass along the slide) keeps the fingers' joint limits and contacts stiff:
# MuJoCo's soft constraints yield in proportion to 1 / the mass they act on.
FINGER_ARMATURE, FINGER_DAMPING = 0.5, 50.0
PALM_HALF, PALM_Z = (0.03, 0.08, 0.012), 0.075
TIMESTEP = 0.002
# Rendering costs most of an env step on a CPU (Mesa llvmpipe): a small shadow map and 2x multisampling.
SHADOW_SIZE, MULTISAMPLES = 512, 2
PARK = (3.0, 0.0, 0.1)  # Behind the camera; object i is parked at PARK + (0, 0.3 i, 0).

# Colours (0..1 RGB) of the scene's fixed parts; chosen away from the objects' palette (envs.fetch).
TABLE_RGB = (0.62, 0.47, 0.33)
FLOOR_RGB = (0.30, 0.34, 0.40)
SKY_RGB = (0.55, 0.60, 0.66)
HAND_RGB = (0.22, 0.22, 0.24)
FINGER_RGB = (0.45, 0.45, 0.48)
GOAL_RGB = (1.0, 0.55, 0.0)  # Orange: not a palette colour.


def camera_axes():
    """The front camera's xyaxes: x to the image's right, y up, looking from CAMERA_POS to CAMERA_LOOK_AT."""
    forward = np.subtract(CAMERA_LOOK_AT, CAMERA_POS)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.concatenate([right, up])


def _vec(values):
    return ' '.join(f'{float(value):.6g}' for value in values)


def _gripper(movable):
    """The mocap body and the hand; `movable`: the fingers slide (else they are fixed, closed)."""
    x, y, z = GRIP_START
    fingers = []
    for side, name in ((1, 'left'), (-1, 'right')):
        joint = f"""
        <joint name="finger_{name}" type="slide" axis="0 {side} 0" range="0 {FINGER_TRAVEL}" damping="{FINGER_DAMPING}"
               armature="{FINGER_ARMATURE}" solreflimit="0.004 1" solimplimit="0.99 0.999 0.001"/>"""
        fingers.append(f"""
      <body name="finger_{name}" pos="0 {side * (FINGER_GAP / 2 + FINGER_HALF[1]):.6g} {FINGER_Z}" gravcomp="1">{joint if movable else ''}
        <geom name="finger_{name}" type="box" size="{_vec(FINGER_HALF)}" mass="0.1" condim="4"
              solref="0.004 1" solimp="0.99 0.999 0.001"
              friction="{FINGER_FRICTION} 0.02 0.001" rgba="{_vec(FINGER_RGB)} 1"/>
      </body>""")
    return f"""
    <body name="mocap" mocap="true" pos="{x} {y} {z}"/>
    <body name="hand" pos="{x} {y} {z}" gravcomp="1">
      <freejoint name="hand"/>
      <site name="grip" size="0.005" group="4"/>
      <geom name="palm" type="box" pos="0 0 {PALM_Z}" size="{_vec(PALM_HALF)}" mass="1" rgba="{_vec(HAND_RGB)} 1"/>
      <geom name="wrist" type="cylinder" pos="0 0 {PALM_Z + PALM_HALF[2] + 0.05:.6g}" size="0.022 0.05" mass="0"
            contype="0" conaffinity="0" rgba="{_vec(HAND_RGB)} 1"/>{''.join(fingers)}
    </body>"""


def _objects(family):
    bodies = []
    for index in range(MAX_OBJECTS):
        pos = _vec(np.add(PARK, (0, 0.3 * index, 0)))
        if family == 'Reach':
            bodies.append(f"""
    <body name="object{index}" mocap="true" pos="{pos}">
      <geom name="object{index}" type="sphere" size="{SPHERE_RADIUS}" contype="0" conaffinity="0" rgba="1 1 1 1"/>
    </body>""")
        else:
            bodies.append(f"""
    <body name="object{index}" pos="{pos}">
      <freejoint name="object{index}"/>
      <geom name="object{index}" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" mass="{BLOCK_MASS}"
            condim="4" friction="1 0.02 0.001" rgba="1 1 1 1"/>
    </body>""")
    if family != 'Reach':
        bodies.append(f"""
    <body name="goal" mocap="true" pos="{_vec(PARK)}">
      <geom name="goal" type="sphere" size="{GOAL_RADIUS}" contype="0" conaffinity="0" rgba="{_vec(GOAL_RGB)} 1"/>
    </body>""")
    return ''.join(bodies)


def xml(family):
    """The scene of a task family ('Reach', 'Push' or 'Pick') as an MJCF string."""
    if family not in ('Reach', 'Push', 'Pick'):
        raise ValueError(f"Unknown fetch family {family!r}; choose Reach, Push or Pick.")
    movable = family != 'Push'  # Push keeps the fingers closed: they have no joints.
    fingers = ''.join(f"""
    <position name="finger_{name}" joint="finger_{name}" kp="{FINGER_KP}" ctrlrange="0 {FINGER_TRAVEL}"
              forcerange="-100 100"/>""" for name in ('left', 'right')) if movable else ''

    return f"""<mujoco model="fetch_{family.lower()}">
  <compiler angle="radian"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="{_vec(SKY_RGB)}" rgb2="{_vec(FLOOR_RGB)}" width="64" height="64"/>
  </asset>
  <!-- The extent sizes the light's shadow map to the table's surroundings, not to the whole floor. -->
  <statistic center="{_vec(TABLE_POS[:2])} {TABLE_TOP}" extent="1"/>
  <visual>
    <global offwidth="64" offheight="64"/>
    <quality shadowsize="{SHADOW_SIZE}" offsamples="{MULTISAMPLES}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4" specular="0.1 0.1 0.1"/>
  </visual>
  <worldbody>
    <light name="top" pos="1.5 0.75 2.5" dir="-0.25 0 -1" directional="true" castshadow="true"
           diffuse="0.55 0.55 0.55" specular="0.1 0.1 0.1"/>
    <geom name="floor" type="plane" size="4 4 0.1" rgba="{_vec(FLOOR_RGB)} 1"/>
    <geom name="table" type="box" pos="{_vec(TABLE_POS)}" size="{_vec(TABLE_HALF)}" rgba="{_vec(TABLE_RGB)} 1"/>
    <camera name="front" pos="{_vec(CAMERA_POS)}" xyaxes="{_vec(camera_axes())}" fovy="{CAMERA_FOVY}"/>
    {_gripper(movable)}{_objects(family)}
  </worldbody>
  <contact>
    <exclude body1="finger_left" body2="finger_right"/>
  </contact>
  <equality>
    <weld name="grip" body1="mocap" body2="hand" solref="0.01 1"/>
  </equality>
  <actuator>{fingers}
  </actuator>
</mujoco>
"""
