"""Atomic writes: the one way a file of a logdir, replay or dataset is written. The bytes go to a
hidden temp file beside the target (`.NAME.PID.tmp`), are synced, then renamed over the target, so a
kill mid-write leaves the previous file (or none) and a temp file that no reader lists.

numpy-free and TensorFlow-free: env workers and collect processes import it through common.episodes.
"""
import json
import os
import pathlib


def write(path, fill, before_replace=None):
    """`fill(file)` writes into a binary temp file, which is synced and renamed to `path`.
    `before_replace()`, if given, runs between the sync and the rename (a checkpoint keeps its
    previous copy there, so `path` itself never goes missing)."""
    path = pathlib.Path(path)
    temp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        with open(temp, 'wb') as file:
            fill(file)
            file.flush()
            os.fsync(file.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes(path, data):
    write(path, lambda file: file.write(data))


def write_text(path, text):
    write_bytes(path, text.encode())


def write_json(path, value):
    """`value` as indented JSON with a final newline."""
    write_text(path, json.dumps(value, indent=1) + '\n')


def sync_directory(directory):
    """Makes the renames into `directory` survive a power loss."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
