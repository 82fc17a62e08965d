"""python -m vsg.slots --configs slots --slots.data DIR --logdir DIR [--slots.KEY VALUE ...]

Pre-trains the slot model (vsg/slots/model.py) on the frames of DIR's episodes and resumes a stopped
run from LOGDIR/slots.npz; see vsg/slots/train.py for what it logs. Bad data or settings stop it with
one line before TensorFlow loads; nothing in the data directory is ever written.
"""
import sys

from vsg.offline.loop import StageError
from vsg.slots import data, settings


def main(argv=None):
    config = settings.parse(sys.argv[1:] if argv is None else argv)
    try:
        frames = data.load(config.slots.data, config.slots.window, config.slots.resolution)
        from vsg.slots import train
        train.run(config, frames)
    except (data.DataError, settings.SlotError, StageError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
