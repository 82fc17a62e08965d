"""Episode videos as GIFs, encoded with pillow (no ffmpeg binary needed)."""
import io
import pathlib

import numpy as np
from PIL import Image

from common import files


def is_frames(shape, dtype):
    """Whether per-step values of `shape` and `dtype` are video frames: uint8 [H, W, C]."""
    return len(shape) == 3 and dtype == np.uint8


def frames_key(obs_space):
    """The observation key whose frames an episode video shows: the first frames entry of
    `obs_space` (a dict of gymnasium spaces), or None when the agent observes no image."""
    return next((key for key, space in obs_space.items() if is_frames(space.shape, space.dtype)), None)


def episode_frames_key(episode):
    """The first key of an episode (per-step arrays [L, ...]) that holds frames, or None: what the
    episode's video shows, found by shape and dtype, never by name."""
    return next((key for key, value in episode.items() if is_frames(value.shape[1:], value.dtype)), None)


def encode_gif(frames, fps=20):
    """GIF bytes of uint8 frames [T, H, W, 3]."""
    images = [Image.fromarray(frame) for frame in np.asarray(frames, np.uint8)]
    with io.BytesIO() as buffer:
        images[0].save(buffer, format='GIF', save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
        return buffer.getvalue()


def write_gif(path, frames, fps=20, scale=2):
    """Writes frames [T, H, W, 3] to `path` atomically, upscaled `scale` times for viewing."""
    path = pathlib.Path(path)
    frames = np.asarray(frames, np.uint8)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    files.write_bytes(path, encode_gif(frames, fps))
