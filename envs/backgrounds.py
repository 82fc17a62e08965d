"""Video sources for the background distraction of envs/dcs.py: square uint8 RGB frames.

A source has `len(source)` videos; `num_frames(video)`, `frame(video, t, size)` (one frame,
[size, size, 3]) and `video(video, size)` (all frames, [T, size, size, 3]). `open_source(directory)`
picks one:

* `GeneratedVideos` (no directory): procedural clips, so that the suite needs no download. Each is
  a fixed function of its index, like a file of a data set (the env's seed only chooses clips and
  frames): a drifting smooth colour-noise field under moving, spinning, striped shapes.
* `JpegVideos`: a directory whose subfolders each hold one clip as JPEG frames in name order, such
  as DAVIS 2017's `JPEGImages/480p` (a DAVIS root containing that folder works too). Frames are
  centre-cropped to a square and resized.
"""

import collections
import pathlib

import numpy as np
from PIL import Image

JPEG_SUFFIXES = ('.jpg', '.jpeg')


def open_source(directory):
    """Generated videos for '' or None, else the JPEG folders under `directory`."""
    if directory is None or directory == '':
        return GeneratedVideos()
    return JpegVideos(directory)


class _Cache:
    """The last few whole videos, keyed by (video, size): a dynamic background plays one per episode."""

    def __init__(self, capacity=8):
        self._capacity = capacity
        self._items = collections.OrderedDict()

    def get(self, key, load):
        if key in self._items:
            self._items.move_to_end(key)
        else:
            self._items[key] = load()
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return self._items[key]


class GeneratedVideos:
    """`count` procedural clips of `frames` frames each, looping seamlessly in space (shapes leave
    one side and come back on the other)."""

    def __init__(self, count=60, frames=60):
        self._count = count
        self._frames = frames
        self._cache = _Cache()
        self._specs = {}

    def __len__(self):
        return self._count

    def num_frames(self, video):
        return self._frames

    def frame(self, video, t, size):
        return _draw(self._spec(video), t, size)

    def video(self, video, size):
        return self._cache.get((video, size), lambda: np.stack(
            [self.frame(video, t, size) for t in range(self._frames)]))

    def _spec(self, video):
        """The random parameters of clip `video`, from its own generator (independent of the env)."""
        if not 0 <= video < self._count:
            raise IndexError(f'Generated video {video} does not exist; there are {self._count}.')
        if video not in self._specs:
            rng = np.random.default_rng([0x5EED, video])
            waves = rng.integers(2, 5)
            count = rng.integers(5, 10)
            self._specs[video] = dict(
                base=rng.uniform(0.15, 0.85, 3),
                # Plane waves per channel: integer wave numbers keep the field periodic on the unit square.
                wave_k=_wave_numbers(rng, waves),
                wave_phase=rng.uniform(0, 2 * np.pi, waves),
                wave_speed=rng.uniform(-0.2, 0.2, waves),
                wave_amp=rng.normal(0, 0.18, (waves, 3)),
                noise=rng.uniform(-0.25, 0.25, (10, 10, 3)),
                noise_drift=rng.uniform(-0.01, 0.01, 2),
                shape_kind=rng.integers(0, 4, count),
                shape_colour=_saturated(rng, count),
                shape_radius=rng.uniform(0.03, 0.12, count),
                shape_start=rng.random((count, 2)),
                shape_velocity=rng.uniform(-0.012, 0.012, (count, 2)),
                shape_angle=rng.uniform(0, 2 * np.pi, count),
                shape_spin=rng.uniform(-0.1, 0.1, count),
                stripe_freq=rng.uniform(40, 120, count),
            )
        return self._specs[video]


def _wave_numbers(rng, count):
    """Integer (kx, ky) in [-5, 5], not both zero."""
    k = rng.integers(-5, 6, (count, 2))
    k[np.all(k == 0, axis=1)] = (1, 0)
    return k


def _saturated(rng, count):
    """Bright colours: a random hue at high saturation and value."""
    hue = rng.random(count)[:, None]
    rgb = np.clip(np.abs((hue * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)
    value, saturation = rng.uniform(0.7, 1, (count, 1)), rng.uniform(0.6, 1, (count, 1))
    return value * (1 - saturation + saturation * rgb)


def _draw(spec, t, size):
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    # Background: smooth periodic noise (a coarse random grid, bilinearly upsampled) drifting over
    # time, plus travelling plane waves.
    image = spec['base'] + _periodic_noise(spec['noise'], x + spec['noise_drift'][0] * t,
                                           y + spec['noise_drift'][1] * t)
    for k, phase, speed, amp in zip(spec['wave_k'], spec['wave_phase'], spec['wave_speed'], spec['wave_amp']):
        image = image + amp * np.sin(2 * np.pi * (k[0] * x + k[1] * y) + phase + speed * t)[..., None]
    for i, kind in enumerate(spec['shape_kind']):
        centre = (spec['shape_start'][i] + spec['shape_velocity'][i] * t) % 1.0
        dx = (x - centre[0] + 0.5) % 1.0 - 0.5  # Distances on the torus: shapes wrap around.
        dy = (y - centre[1] + 0.5) % 1.0 - 0.5
        angle = spec['shape_angle'][i] + spec['shape_spin'][i] * t
        u = np.cos(angle) * dx + np.sin(angle) * dy
        v = -np.sin(angle) * dx + np.cos(angle) * dy
        r = spec['shape_radius'][i]
        if kind == 0:  # disc
            inside = u ** 2 + v ** 2 < r ** 2
        elif kind == 1:  # square
            inside = np.maximum(np.abs(u), np.abs(v)) < r * 0.8
        elif kind == 2:  # diamond
            inside = np.abs(u) + np.abs(v) < r
        else:  # triangle
            inside = (v > -r / 2) & (np.sqrt(3) * u + v < r) & (-np.sqrt(3) * u + v < r)
        stripes = 0.75 + 0.25 * np.sign(np.sin(spec['stripe_freq'][i] * u))
        image = np.where(inside[..., None], spec['shape_colour'][i] * stripes[..., None], image)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _periodic_noise(grid, x, y):
    """Bilinear interpolation of a wrapped coarse grid at coordinates in units of the image side."""
    n = grid.shape[0]
    gx, gy = (x % 1.0) * n, (y % 1.0) * n
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = (gx - x0)[..., None], (gy - y0)[..., None]
    x1, y1 = (x0 + 1) % n, (y0 + 1) % n
    return ((1 - fy) * ((1 - fx) * grid[y0, x0] + fx * grid[y0, x1])
            + fy * ((1 - fx) * grid[y1, x0] + fx * grid[y1, x1]))


class JpegVideos:
    """Clips stored as folders of JPEG frames under `directory` (sorted by folder name)."""

    def __init__(self, directory):
        if not isinstance(directory, (str, pathlib.PurePath)):
            raise ValueError(f'background_dir must be a path string, or empty for generated videos; '
                             f'got {directory!r}.')
        root = pathlib.Path(directory).expanduser()
        if (root / 'JPEGImages' / '480p').is_dir():  # A DAVIS 2017 root.
            root = root / 'JPEGImages' / '480p'
        if not root.is_dir():
            raise ValueError(f"background_dir '{directory}' is not a directory; give a folder of "
                             f"JPEG-frame folders (e.g. DAVIS/JPEGImages/480p) or '' for generated videos.")
        self._videos = []
        for folder in sorted(path for path in root.iterdir() if path.is_dir()):
            frames = sorted(path for path in folder.iterdir() if path.suffix.lower() in JPEG_SUFFIXES)
            if frames:
                self._videos.append(frames)
        if not self._videos:
            raise ValueError(f"background_dir '{directory}' holds no videos: expected subfolders of "
                             f"JPEG frames (e.g. DAVIS/JPEGImages/480p/<video>/00000.jpg).")
        self._cache = _Cache()

    def __len__(self):
        return len(self._videos)

    def num_frames(self, video):
        return len(self._videos[video])

    def frame(self, video, t, size):
        return _load_square(self._videos[video][t], size)

    def video(self, video, size):
        return self._cache.get((video, size), lambda: np.stack(
            [_load_square(path, size) for path in self._videos[video]]))


def _load_square(path, size):
    with Image.open(path) as image:
        image = image.convert('RGB')
        side = min(image.size)
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        image = image.crop((left, top, left + side, top + side))
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
