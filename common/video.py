"""Episode videos as GIFs, written with pillow (no ffmpeg binary needed)."""
import os
import pathlib

import numpy as np
from PIL import Image


def write_gif(path, frames, fps=20, scale=2):
    """Writes uint8 frames [T, H, W, 3] to `path` atomically, upscaled `scale` times for viewing."""
    path = pathlib.Path(path)
    frames = np.asarray(frames, np.uint8)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(frame) for frame in frames]
    tmp = path.with_name(f'.{path.name}.tmp')
    images[0].save(tmp, format='GIF', save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    os.replace(tmp, path)
