"""The slot model's checkpoint by name, LOGDIR/slots.npz: its variables (and the optimizer's), the
update count, and as meta the SlotConfig it was built from and the episodes held out, so that `load`
rebuilds the model from the file alone.
"""
import pathlib

from common import checkpoint
from vsg.slots.settings import SlotConfig, SlotError

NAME = 'slots'  # the checkpoint LOGDIR/slots.npz


def path_of(path_or_logdir):
    """The checkpoint file: the path itself, or LOGDIR/slots.npz for a directory."""
    path = pathlib.Path(path_or_logdir).expanduser()
    return path / f'{NAME}.npz' if path.is_dir() else path


def meta(config, held_out):
    return {'model': config.as_dict(), 'held_out': list(held_out)}


def saved(path):
    """(SlotConfig, meta) of the checkpoint `path`; SlotError (one line) for a missing, unreadable or
    foreign file."""
    path = pathlib.Path(path)
    if not path.exists():
        raise SlotError(f'{path} does not exist; pre-train a slot model with python -m vsg.slots --logdir DIR')
    try:
        found = checkpoint.read_meta(path)
    except checkpoint.CheckpointError as e:
        raise SlotError(str(e)) from None
    if not found or 'model' not in found:
        raise SlotError(f'{path} holds no slot model (no saved slot config); was it written by vsg.slots?')
    try:
        return SlotConfig(**found['model']), found
    except TypeError as e:
        raise SlotError(f'{path} holds a slot config this code cannot build ({e})') from None


def check_fits(path, config, **wanted):
    """Raises SlotError with one line listing what differs between the saved model of `path` and
    `wanted` (any SlotConfig fields; None: anything)."""
    differ = config.differences(wanted)
    if differ:
        raise SlotError(f"{path} holds another slot model: {', '.join(differ)}")


def load(path_or_logdir, **wanted):
    """(model, SlotConfig) from a checkpoint file or a logdir holding slots.npz: the model rebuilt from
    the saved sizes, with the saved weights. `wanted` sizes (e.g. num_slots=6, slot_size=64,
    resolution=64) that differ from the saved ones are refused with one SlotError line listing them;
    so is a missing file."""
    from vsg.slots.model import SlotModel
    path = path_of(path_or_logdir)
    config, _ = saved(path)
    check_fits(path, config, **wanted)
    model = SlotModel(config)
    model.build_all()
    try:
        missing, _ = checkpoint.load_partial(path, model.variables, '')  # leaves the optimizer's out
    except checkpoint.CheckpointError as e:
        raise SlotError(str(e)) from None
    if missing:
        raise SlotError(f'{path} lacks {len(missing)} of the slot model\'s variables (e.g. {missing[0]})')
    return model, config
