"""MuJoCo rendering setup shared by every suite that renders with it."""

import os
import sys

# Training machines have no display; EGL (Mesa llvmpipe on CPU) renders headless. Only a
# default: a backend the user chose wins. dm_control reads it when first imported.
os.environ.setdefault('MUJOCO_GL', 'egl')


def check_render_allowed():
    """Raise instead of crashing: call before loading a MuJoCo renderer and before rendering."""
    if 'tensorflow' in sys.modules:
        raise RuntimeError(
            'Cannot render with MuJoCo in a process that has imported TensorFlow (their Mesa and '
            'LLVM libraries crash together): use envs.make(..., parallel=True), and keep '
            'TensorFlow out of what the env worker imports.')
