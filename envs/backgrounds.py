"""Video sources for the background distraction of envs/dcs.py: square uint8 RGB frames.

A source has `len(source)` videos; `num_frames(video)`, `frame(video, t, size)` (one frame,
[size, size, 3]) and `video(video, size)` (all frames, [T, size, size, 3]). `open_source(directory,
split)` picks one:

* `GeneratedVideos` (no directory): procedural clips, so that the suite needs no download. Each is
  a fixed function of its index, like a file of a data set (the env's seed only chooses clips and
  frames): a drifting smooth colour-noise field under moving, spinning, striped shapes.
* `DirectoryVideos`: a directory whose subfolders each hold one clip as JPEG frames in name order,
  such as DAVIS 2017's `JPEGImages/480p` (a DAVIS root containing that folder works too), and whose
  video files (VIDEO_SUFFIXES, decoded with PyAV, imported only when such a file is there) are one
  clip each. Frames are centre-cropped to a square and resized.

`split` (SPLITS) keeps every video (`all`) or the training or evaluation ones, as the original suite
does: DAVIS's own lists `ImageSets/2017/train.txt` and `val.txt` name them in a directory; of the
generated clips the first two thirds train and the last third evaluate.
"""

import collections
import pathlib

import numpy as np
from PIL import Image

JPEG_SUFFIXES = ('.jpg', '.jpeg')
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.webm', '.mkv')
SPLITS = ('all', 'train', 'val')


def open_source(directory, split='all'):
    """Generated videos for '' or None, else the JPEG folders and video files under `directory`;
    those of `split` (one of SPLITS) only."""
    if not (isinstance(split, str) and split in SPLITS):
        raise ValueError(f"DCS background_split must be {', '.join(SPLITS[:-1])} or {SPLITS[-1]}; got {split!r}.")
    if directory is None or directory == '':
        return GeneratedVideos(split=split)
    return DirectoryVideos(directory, split)


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
    one side and come back on the other). Split `train` holds the first two thirds of them, `val`
    the rest: `clips` are the indices of the clips this source plays, in its order."""

    def __init__(self, count=60, frames=60, split='all'):
        self._count = count
        self._frames = frames
        train = count * 2 // 3
        self.clips = tuple({'all': range(count), 'train': range(train), 'val': range(train, count)}[split])
        self._cache = _Cache()
        self._specs = {}

    def __len__(self):
        return len(self.clips)

    def num_frames(self, video):
        return self._frames

    def frame(self, video, t, size):
        if not 0 <= video < len(self.clips):
            raise IndexError(f'Generated video {video} does not exist; there are {len(self.clips)}.')
        return _draw(self._spec(self.clips[video]), t, size)

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


class DirectoryVideos:
    """Clips under `directory`, sorted by name: each subfolder of JPEG frames and each video file is
    one. `names` are theirs (a video file's without its suffix), in this source's order."""

    def __init__(self, directory, split='all'):
        if not isinstance(directory, (str, pathlib.PurePath)):
            raise ValueError(f'background_dir must be a path string, or empty for generated videos; '
                             f'got {directory!r}.')
        given = pathlib.Path(directory).expanduser()
        root = given
        if (root / 'JPEGImages' / '480p').is_dir():  # A DAVIS 2017 root.
            root = root / 'JPEGImages' / '480p'
        if not root.is_dir():
            raise ValueError(f"background_dir '{directory}' is not a directory; give a folder of video files "
                             f"({', '.join(VIDEO_SUFFIXES)}) or JPEG-frame folders (e.g. DAVIS/JPEGImages/480p), "
                             f"or '' for generated videos.")
        videos = []  # (name, its JPEG frames or its video file)
        for path in sorted(root.iterdir()):
            if path.is_dir():
                frames = sorted(file for file in path.iterdir() if file.suffix.lower() in JPEG_SUFFIXES)
                if frames:
                    videos.append((path.name, frames))
            elif path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
                videos.append((path.stem, path))
        if not videos:
            raise ValueError(f"background_dir '{directory}' holds no videos: expected video files "
                             f"({', '.join(VIDEO_SUFFIXES)}) or subfolders of JPEG frames "
                             f"(e.g. DAVIS/JPEGImages/480p/<video>/00000.jpg).")
        if split != 'all':
            videos = _select_split(videos, directory, given, root, split)
        self.names = [name for name, _ in videos]
        self._videos = [source for _, source in videos]
        self._counts = {}  # video -> frame count, for video files once decoded
        for source in self._videos:
            if isinstance(source, pathlib.Path):
                _decode(source, limit=1)  # Fails now, in one line, on a file that does not decode.
        self._cache = _Cache()

    def __len__(self):
        return len(self._videos)

    def num_frames(self, video):
        source = self._videos[video]
        if not isinstance(source, pathlib.Path):
            return len(source)
        if video not in self._counts:
            self._counts[video] = _decode(source)
        return self._counts[video]

    def frame(self, video, t, size):
        if isinstance(self._videos[video], pathlib.Path):
            return self.video(video, size)[t]  # A file decodes from its start: keep the whole clip.
        return _load_square(self._videos[video][t], size)

    def video(self, video, size):
        return self._cache.get((video, size), lambda: self._load(video, size))

    def _load(self, video, size):
        source = self._videos[video]
        if isinstance(source, pathlib.Path):
            frames = _decode(source, size)
            self._counts[video] = len(frames)
            return np.stack(frames)
        return np.stack([_load_square(path, size) for path in source])


def _select_split(videos, directory, given, root, split):
    """The `videos` that DAVIS's list `split`.txt names: in ImageSets/2017 two levels above the
    JPEG folders (DAVIS's layout), or in the directory or its parent."""
    names = f'{split}.txt'
    given, root = given.resolve(), root.resolve()
    candidates = [root.parent.parent / 'ImageSets' / '2017' / names]
    for folder in (given, root):
        candidates += [folder / names, folder.parent / names]
    candidates = list(dict.fromkeys(candidates))
    listing = next((path for path in candidates if path.is_file()), None)
    if listing is None:
        raise ValueError(f"DCS background_split {split} needs DAVIS's list {names}, found at none of "
                         f"{', '.join(map(str, candidates))}; give DAVIS 2017's JPEGImages/480p (with its "
                         f"ImageSets/2017) or put {names} next to the videos, or use background_split all.")
    listed = list(dict.fromkeys(line.strip() for line in listing.read_text().splitlines() if line.strip()))
    if not listed:
        raise ValueError(f"'{listing}' lists no videos; DCS background_split {split} plays the videos it names, "
                         f"one per line.")
    present = {name for name, _ in videos}
    missing = [name for name in listed if name not in present]
    if missing:
        shown = ', '.join(missing[:5]) + (', ...' if len(missing) > 5 else '')
        raise ValueError(f"background_dir '{directory}' lacks {len(missing)} of the {len(listed)} videos listed "
                         f"in '{listing}' ({shown}); it may name only the JPEG folders and video files "
                         f"(without suffix) there.")
    chosen = set(listed)
    return [(name, source) for name, source in videos if name in chosen]


def _decode(path, size=None, limit=None):
    """The frames of video file `path` (at most `limit`) as squares of side `size`, or for size None
    only their count. Any failure is one ValueError naming the file."""
    try:
        import av
    except ImportError:
        raise ValueError(f"background video '{path}' needs PyAV to decode: pip install av "
                         f"(see requirements.txt).") from None
    frames, count, problem = [], 0, None
    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                stream = container.streams.video[0]
                # One decoder thread: env workers already run in parallel.
                stream.codec_context.thread_count = 1
                for frame in container.decode(stream):
                    count += 1
                    if size is not None:
                        frames.append(_square(frame.to_image(), size))
                    if limit and count >= limit:
                        break
            else:
                problem = 'it has no video stream'
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as error:
        reason = ' '.join(str(getattr(error, 'strerror', None) or error).split()) or type(error).__name__
        raise ValueError(f"background video '{path}' cannot be decoded: {reason}") from None
    if problem is None and not count:
        problem = 'it has no frames'
    if problem:
        raise ValueError(f"background video '{path}' cannot be played: {problem}.")
    return count if size is None else frames


def _load_square(path, size):
    with Image.open(path) as image:
        return _square(image, size)


def _square(image, size):
    """A PIL image centre-cropped to a square and resized to [size, size, 3] uint8 RGB."""
    image = image.convert('RGB')
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
