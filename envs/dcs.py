"""Distracting Control Suite (Stone et al. 2021): `dcs_<domain>_<task>`, e.g. dcs_cheetah_run.

DMC (envs/dmc.py) with up to three distractions that change only what is drawn, never the physics:

* background: video frames replace the skybox texture (all six cube faces show the frame, upright
  on the side faces); the video shows through the floor, which turns clear for the reacher, stays
  opaque for walker and cheetah and gets alpha 0.3 elsewhere. Static: one random frame
  per episode; dynamic: a random clip plays from a random frame, reversing at its ends. Videos come
  from `background_dir` (video files or folders of JPEG frames, e.g. DAVIS 2017) or, by default,
  from envs/backgrounds.py's generated clips; `background_split` train or val keeps the training or
  evaluation ones (DAVIS's lists; two thirds and a third of the generated clips). Easy and medium
  draw from the first 4 and 8 clips, harder settings from all of them.
* camera: the camera orbits the point it looks at (along its axis at the depth of its body's
  centre of mass) by horizontal and vertical angles up to pi/2 * scale, moves 0.5 * scale closer or
  1.5 * scale farther, and rolls up to pi/2 * scale; except for the top-down reacher it stays above
  that point's height. Dynamic: its position does a bounded random walk.
* color: every material's RGB is drawn within +-scale of the original (clipped to [0, 1]); dynamic:
  a random walk of std 0.03 * scale per step within those bounds.

Static distractions are resampled at each reset; dynamic ones move at every env step (frame).
The segmentation (envs.make(..., segmentation=True)) is DMC's, seen through the same camera as the
image: the camera distraction moves it with the view, the background and colours never change it.
`difficulty` easy / medium / hard is scale 0.1 / 0.2 / 0.3, or give the scale in (0, 1]. All the
distraction randomness comes from generators seeded by the env's seed apart from the task's own
random state, so rewards and physics equal DMC's under the same seed and actions. So does the state
(envs.make(..., obs='state')): DMC's observation dict as vectors (envs/dmc.py), untouched by the
distractions, which only a pixel agent sees.

`python -m envs.dcs --out docs/dcs_frames.png` draws a strip of frames at each difficulty.
"""

import contextlib
import numbers

import numpy as np

from envs import backgrounds, dmc, rendering

rendering.check_render_allowed()
import mujoco  # noqa: E402

# The object-centric paper's domains and the original suite's.
DOMAINS = ('ball_in_cup', 'cartpole', 'cheetah', 'finger', 'hopper', 'humanoid', 'reacher', 'walker')
DIFFICULTIES = {'easy': 0.1, 'medium': 0.2, 'hard': 0.3}
DISTRACTIONS = ('background', 'camera', 'color')
# Alpha of the floor material under a background video; 0.3 for the domains not listed.
GROUND_ALPHA = {'reacher': 0.0, 'walker': 1.0, 'cheetah': 1.0}
DEFAULT_GROUND_ALPHA = 0.3
# Domains whose camera may orbit below its target (the reacher looks straight down).
ANY_ELEVATION = ('reacher',)


def resolve_task(task):
    """'ball_in_cup_catch' -> ('ball_in_cup', 'catch'), for the DCS domains only."""
    return dmc.resolve_task(task, prefix='dcs', domains=DOMAINS)


def parse_difficulty(difficulty):
    """The distraction scale: easy/medium/hard or a number (or numeric string) in (0, 1]."""
    if isinstance(difficulty, str) and difficulty in DIFFICULTIES:
        return DIFFICULTIES[difficulty]
    value = None
    if isinstance(difficulty, (numbers.Real, str)) and not isinstance(difficulty, bool):
        try:
            value = float(difficulty)
        except ValueError:
            pass
    if value is None or not 0 < value <= 1:
        raise ValueError(f'DCS difficulty must be easy, medium, hard or a number in (0, 1]; got {difficulty!r}.')
    return value


def parse_distractions(distractions):
    """A list or tuple of some of DISTRACTIONS, where 'all' stands for all three; a comma-separated
    string (from a command line) too."""
    if isinstance(distractions, str):
        distractions = [name.strip() for name in distractions.split(',') if name.strip()]
    if not isinstance(distractions, (list, tuple)):
        raise ValueError(f"DCS distractions must be a list of some of {', '.join(DISTRACTIONS)} (or all); "
                         f"got {distractions!r}.")
    unknown = [name for name in distractions if name not in (*DISTRACTIONS, 'all')]
    if unknown:
        raise ValueError(f"Unknown DCS distraction {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(DISTRACTIONS)} or all.")
    return tuple(name for name in DISTRACTIONS if name in distractions or 'all' in distractions)


class DCS(dmc.DMC):
    """DMC plus distractions applied to the model's materials, skybox texture and camera pose."""

    def __init__(self, task, seed=0, difficulty='easy', dynamic=False,
                 distractions=DISTRACTIONS, background_dir='', background_split='all', camera=-1):
        """difficulty: easy, medium, hard or a scale in (0, 1]. dynamic: distractions change every
        step (else once per episode). distractions: which of background, camera, color, or all. background_dir:
        video files or folders of JPEG frames, '' or None for generated videos. background_split: all,
        train or val (see envs/backgrounds.py). camera: a camera id, -1 for the domain's default."""
        domain, _ = resolve_task(task)
        scale = parse_difficulty(difficulty)
        if not isinstance(dynamic, (bool, np.bool_)):
            raise ValueError(f'DCS dynamic must be true or false; got {dynamic!r}.')
        distractions = parse_distractions(distractions)
        if not (isinstance(camera, numbers.Integral) and not isinstance(camera, bool) and camera >= -1):
            raise ValueError(f'DCS camera must be a camera id (an int >= 0) or -1 for the default; got {camera!r}.')
        # Checked even when the background is off, so that a mistyped path does not go unnoticed.
        source = backgrounds.open_source(background_dir, background_split)
        super().__init__(task, seed=seed, camera=camera)
        try:
            self._add_distractions(domain, seed, scale, bool(dynamic), distractions, source)
        except Exception:
            self._env.close()
            raise

    def _add_distractions(self, domain, seed, scale, dynamic, distractions, source):
        physics = self._env.physics
        if self._camera >= physics.model.ncam:
            raise ValueError(f'DCS camera {self._camera} does not exist: {domain} has cameras 0 to '
                             f'{physics.model.ncam - 1}, or -1 for the default.')
        self.scale, self.dynamic, self.distractions = scale, dynamic, distractions
        # One generator per distraction, apart from the task's RandomState: each distraction's
        # draws do not depend on which others are on.
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0xDC5]).spawn(3)]
        self._background = self._camera_pose = self._color = None
        if 'background' in distractions:
            videos = 4 if scale <= 0.1 else 8 if scale <= 0.2 else len(source)
            alpha = GROUND_ALPHA.get(domain, DEFAULT_GROUND_ALPHA)
            self._background = Background(physics, source, min(videos, len(source)), alpha, dynamic, rngs[0])
        if 'camera' in distractions:
            self._camera_pose = CameraPose(physics, self._camera, scale, domain not in ANY_ELEVATION, rngs[1])
        if 'color' in distractions:
            self._color = Color(physics, scale, rngs[2])

    def reset(self):
        obs = super().reset()
        for part in self._parts():
            part.reset()
        return obs

    def step(self, action):
        obs = super().step(action)
        if self.dynamic:
            for part in self._parts():
                part.step()
        return obs

    def render(self, size):
        rendering.check_render_allowed()
        if self._background:
            self._background.upload(max(size))
        with self._camera_pose.applied() if self._camera_pose else contextlib.nullcontext():
            return super().render(size)

    def render_segmentation(self, size):
        """DMC's body ids (envs/dmc.py) through the same camera as render(), so they line up with the
        image: the camera distraction moves them with the view; the background video and the colours
        never show (the skybox is 0)."""
        with self._camera_pose.applied() if self._camera_pose else contextlib.nullcontext():
            return super().render_segmentation(size)

    def distraction_state(self):
        """The current distraction parameters (for tests and plots): background (video, frame),
        camera (horizontal, vertical angle, distance ratio, roll), color (RGB of every material) and
        color_original; only the distractions that are on."""
        state = {}
        if self._background:
            state['background'] = np.array(self._background.state)
        if self._camera_pose:
            state['camera'] = self._camera_pose.params.copy()
        if self._color:
            state['color'], state['color_original'] = self._color.rgb.copy(), self._color.original.copy()
        return state

    def _parts(self):
        return [part for part in (self._background, self._camera_pose, self._color) if part]


class Background:
    """Video frames in the skybox texture. The texture is shrunk to one square face, which MuJoCo
    repeats on all six, so that an upload per frame stays cheap; the frame is upright on the faces
    at the sides of y (what most cameras see) and turned on the others (the humanoid's camera looks
    along x). Each change goes to the renderer's GL context with mjr_uploadTexture."""

    def __init__(self, physics, source, videos, ground_alpha, dynamic, rng):
        self._physics, self._source, self._videos, self._rng = physics, source, videos, rng
        self._dynamic = dynamic
        model = physics.model
        skyboxes = np.flatnonzero(model.tex_type == mujoco.mjtTexture.mjTEXTURE_SKYBOX)
        if not len(skyboxes):
            raise ValueError('This DCS domain has no skybox texture to show the background in.')
        self._texture = int(skyboxes[0])
        # The largest square face that fits the texture's buffer (one face of its cube).
        self._max_side = int(model.tex_width[self._texture])
        for material in range(model.nmat):
            if model.id2name(material, 'material') == 'grid':
                model.mat_rgba[material, 3] = ground_alpha
        self.state = (0, 0)  # (video, frame)
        self._direction = 1
        self._uploaded = None

    def reset(self):
        video = int(self._rng.integers(self._videos))
        self.state = (video, int(self._rng.integers(self._source.num_frames(video))))
        self._direction = 1

    def step(self):
        video, frame = self.state
        count = self._source.num_frames(video)
        if count > 1:
            if not 0 <= frame + self._direction < count:  # Ping-pong at the ends.
                self._direction = -self._direction
            frame += self._direction
        self.state = (video, frame)

    def upload(self, render_side):
        """Put the current frame in the texture and upload it to the GL context if it changed.
        Faces get about twice the rendered side: the camera sees less than half of a face."""
        side = int(min(self._max_side, max(64, 2 * render_side)))
        key = (*self.state, side)
        if key == self._uploaded:
            return
        video, frame = self.state
        if self._dynamic:
            image = self._source.video(video, side)[frame]  # The clip plays: load it whole, once.
        else:
            image = self._source.frame(video, frame, side)
        model = self._physics.model
        channels = int(model.tex_nchannel[self._texture])
        if channels == 4:
            image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], -1)
        # Mirrored, so that the side faces (what most cameras see) show the frame as it is.
        start = int(model.tex_adr[self._texture])
        model.tex_data[start:start + image.size] = image[:, ::-1].ravel()
        model.tex_width[self._texture] = model.tex_height[self._texture] = side
        contexts = self._physics.contexts
        with contexts.gl.make_current() as context:
            context.call(mujoco.mjr_uploadTexture, model.ptr, contexts.mujoco.ptr, self._texture)
        self._uploaded = key


class CameraPose:
    """Orbits the camera around its look-at point while rendering, then puts the pose back: the
    physics data never keeps a changed camera.

    params = (horizontal angle about the camera's up axis, vertical angle about its right axis,
    distance ratio, roll about its view axis), relative to the domain's camera at reset.
    """

    def __init__(self, physics, camera, scale, above_target, rng):
        self._physics, self._camera, self._rng = physics, camera, rng
        self._above_target = above_target
        self._angle = np.pi / 2 * scale
        self._zoom = (1 - 0.5 * scale, 1 + 1.5 * scale)
        self._vel_std, self._max_vel = 0.1 * scale, 0.4 * scale
        self._roll_std, self._max_roll_vel = np.pi / 300 * scale, np.pi / 50 * scale
        self.params = np.array([0.0, 0.0, 1.0, 0.0])
        self._distance = 1.0
        self._base = np.eye(3)
        self._velocity = np.zeros(3)
        self._roll_velocity = 0.0

    def reset(self):
        data, model = self._physics.data, self._physics.model
        position = data.cam_xpos[self._camera].copy()
        self._base = data.cam_xmat[self._camera].reshape(3, 3).copy()
        centre = data.subtree_com[model.cam_bodyid[self._camera]]
        depth = float(np.dot(position - centre, self._base[:, 2]))  # The camera looks along -z.
        self._distance = depth if depth > 0.05 else 1.0
        horizontal = self._rng.uniform(-self._angle, self._angle)
        low = max(-self._angle, self._lowest_vertical(horizontal))
        vertical = self._rng.uniform(low, self._angle) if low < self._angle else self._angle
        self.params = np.array([horizontal, vertical, self._rng.uniform(*self._zoom),
                                self._rng.uniform(-self._angle, self._angle)])
        self._velocity = np.zeros(3)
        self._roll_velocity = 0.0

    def step(self):
        """Random walk of the camera position (in metres around the look-at point, kept within the
        angle and zoom bounds) and of the roll."""
        rng = self._rng
        self._velocity = _clip_norm(self._velocity + rng.normal(0, self._vel_std, 3), self._max_vel)
        old = self._offset(*self.params[:3])
        moved = old + self._velocity
        distance = np.linalg.norm(moved)
        horizontal = np.clip(np.arctan2(moved[0], moved[2]), -self._angle, self._angle)
        vertical = np.arcsin(np.clip(moved[1] / max(distance, 1e-9), -1, 1))
        vertical = np.clip(vertical, max(-self._angle, self._lowest_vertical(horizontal)), self._angle)
        ratio = np.clip(distance / self._distance, *self._zoom)
        self.params[:3] = horizontal, vertical, ratio
        self._velocity = self._offset(horizontal, vertical, ratio) - old  # No pushing into a bound.
        roll_velocity = np.clip(self._roll_velocity + rng.normal(0, self._roll_std), -self._max_roll_vel,
                                self._max_roll_vel)
        roll = np.clip(self.params[3] + roll_velocity, -self._angle, self._angle)
        self._roll_velocity = roll - self.params[3]
        self.params[3] = roll

    @contextlib.contextmanager
    def applied(self):
        data = self._physics.data
        position, matrix = data.cam_xpos[self._camera].copy(), data.cam_xmat[self._camera].copy()
        horizontal, vertical, ratio, roll = self.params
        turn = _rotation(1, horizontal) @ _rotation(0, -vertical)  # In the camera's own axes.
        frame = matrix.reshape(3, 3)
        target = position - self._distance * frame[:, 2]
        data.cam_xpos[self._camera] = target + ratio * self._distance * frame @ turn[:, 2]
        data.cam_xmat[self._camera] = (frame @ turn @ _rotation(2, roll)).ravel()
        try:
            yield
        finally:
            data.cam_xpos[self._camera], data.cam_xmat[self._camera] = position, matrix

    def _offset(self, horizontal, vertical, ratio):
        """Camera position relative to the look-at point, in the reset camera's axes."""
        return ratio * self._distance * np.array([
            np.cos(vertical) * np.sin(horizontal), np.sin(vertical), np.cos(vertical) * np.cos(horizontal)])

    def _lowest_vertical(self, horizontal):
        """The lowest vertical angle keeping the camera at or above its target's height."""
        if not self._above_target:
            return -np.inf
        x_up, y_up, z_up = self._base[2]  # World height of the camera's unit axes.
        if y_up <= 1e-6:
            return -np.inf
        return float(np.arctan(-(x_up * np.sin(horizontal) + z_up * np.cos(horizontal)) / y_up))


class Color:
    """Every material's RGB within +-scale of the original."""

    def __init__(self, physics, scale, rng):
        self._model, self._scale, self._rng = physics.model, scale, rng
        self.original = self._model.mat_rgba[:, :3].astype(np.float64)
        self._low = np.clip(self.original - scale, 0, 1)
        self._high = np.clip(self.original + scale, 0, 1)
        self.rgb = self.original.copy()

    def reset(self):
        self._set(self.original + self._rng.uniform(-self._scale, self._scale, self.original.shape))

    def step(self):
        self._set(self.rgb + self._rng.normal(0, 0.03 * self._scale, self.rgb.shape))

    def _set(self, rgb):
        self.rgb = np.clip(rgb, self._low, self._high)
        self._model.mat_rgba[:, :3] = self.rgb


def _rotation(axis, angle):
    """Rotation matrix about the x (0), y (1) or z (2) axis."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(3)
    matrix[i, i] = matrix[j, j] = c
    matrix[i, j], matrix[j, i] = -s, s
    return matrix


def _clip_norm(vector, limit):
    norm = np.linalg.norm(vector)
    return vector * (limit / norm) if norm > limit else vector


def frame_strip(task='cheetah_run', size=64, frames=6, every=10, seed=0):
    """An image of rows of frames (every `every` agent steps of one episode, random actions): plain
    DMC, then each difficulty static and dynamic, all three distractions on, generated videos."""
    import envs  # Here, not at the top: envs imports this module's suite lazily.
    from PIL import Image, ImageDraw

    rows = [('dmc', f'dmc_{task}', {})] + [
        (f'{level} {"dynamic" if dynamic else "static"}', f'dcs_{task}', dict(difficulty=level, dynamic=dynamic))
        for level in DIFFICULTIES for dynamic in (False, True)]
    margin, images = 100, []
    for label, name, settings in rows:
        env = envs.make(name, seed=seed, size=(size, size), action_repeat=2, time_limit=2 * every * frames,
                        parallel=False, **settings)
        actions = np.random.default_rng(seed).uniform(-1, 1, (every * frames, *env.act_space['action'].shape))
        strip = [env.reset()['image']]
        for step, action in enumerate(actions[:every * (frames - 1)], 1):
            image = env.step(action.astype(np.float32))['image']
            if step % every == 0:
                strip.append(image)
        env.close()
        row = Image.new('RGB', (margin + size * frames, size), 'white')
        row.paste(Image.fromarray(np.concatenate(strip, 1)), (margin, 0))
        ImageDraw.Draw(row).text((6, size // 2 - 6), label, fill='black')
        images.append(np.asarray(row))
    return Image.fromarray(np.concatenate(images, 0))


def _main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description='Write a strip of DCS frames at each difficulty (PNG).')
    parser.add_argument('--task', default='cheetah_run', help='DCS task without the dcs_ prefix')
    parser.add_argument('--out', default='docs/dcs_frames.png')
    parser.add_argument('--size', type=int, default=64, help='side of each frame in px')
    parser.add_argument('--frames', type=int, default=6, help='frames per row')
    parser.add_argument('--every', type=int, default=10, help='agent steps between frames')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    frame_strip(args.task, args.size, args.frames, args.every, args.seed).save(args.out)
    print(args.out)


if __name__ == '__main__':
    _main()
