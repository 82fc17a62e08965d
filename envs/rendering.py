"""MuJoCo rendering setup shared by every suite that renders with it."""

import os
import sys

# Training machines have no display; EGL (Mesa llvmpipe on CPU) renders headless. Only a
# default: a backend the user chose wins. dm_control reads it when first imported.
os.environ.setdefault('MUJOCO_GL', 'egl')

# DMC's models ask for a 2048x2048 shadow map, redrawn for every frame whatever its size: on Mesa
# llvmpipe that is most of a 64x64 render (cartpole 25-39 ms, 8-12 ms at 256). At 256 the 64x64
# frames of cartpole, walker and cheetah differ from the default's in 0.01-0.2% of their pixels.
DMC_SHADOW_SIZE = 256


def check_render_allowed():
    """Raise instead of crashing: call before loading a MuJoCo renderer and before rendering."""
    if 'tensorflow' in sys.modules:
        raise RuntimeError(
            'Cannot render with MuJoCo in a process that has imported TensorFlow (their Mesa and '
            'LLVM libraries crash together): use envs.make(..., parallel=True), and keep '
            'TensorFlow out of what the env worker imports.')
