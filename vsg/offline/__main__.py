"""python -m vsg.offline --configs offline --offline.stage all --offline.data DIR --logdir DIR"""
import sys

from vsg.offline.pipeline import main

if __name__ == '__main__':
    sys.exit(main())
