"""The slot model behind the `slots` and `masks` representations (offline.slots): a pre-trained
vsg.slots checkpoint run over every episode once (`chunk` frames per call, the slots carried from
chunk to chunk, so memory stays bounded) and over live observations (one frame per env step, each
env's slots carried from its previous step and restarted at is_first), adding data.SLOTS to each;
the slots the representations keep, chosen as offline.slots.choose says (choice.py) and recorded in
LOGDIR/slots_choice.json with the choices of the other ways, their agreement and, where the episodes
carry segmentation ids, which slot holds each object (so a choice can be named: "the agent's slot");
and for `masks` data.MASKS, the union of the chosen slots' masks (decoded from the episodes' slots once
chosen, so only that union is held, not every slot's mask).
"""
import itertools
import time

import numpy as np

from common import files
from vsg.offline import choice, data, decode
from vsg.offline.loop import StageError
from vsg.slots import evaluation, store
from vsg.slots.data import SEGMENTATION
from vsg.slots.settings import SlotError

RECORD = 'slots_choice.json'
OBJECT_EPISODES = 16  # training episodes whose masks, against the data's object ids, say which object a slot holds


def representations(cfg):
    """(what the latent action model reads, what the cloned policies read)."""
    return cfg.repr, data.policy_representation(cfg.repr, cfg.bc.repr)


def needed(cfg):
    """Whether the run needs the slot model: either representation is a slot one."""
    return any(name in data.SLOT_REPRESENTATIONS for name in representations(cfg))


def check(cfg):
    """The offline.slots settings a run cannot start with, as a StageError (one line); reads the
    checkpoint's saved sizes only."""
    slots = cfg.slots
    if slots.choose not in choice.WAYS:
        raise StageError(f"offline.slots.choose={slots.choose!r} is not allowed; choose one of {', '.join(choice.WAYS)}")
    if not needed(cfg):
        return
    if not slots.checkpoint:
        which = f'offline.repr {cfg.repr}' if cfg.repr in data.SLOT_REPRESENTATIONS else f'offline.bc.repr {cfg.bc.repr}'
        raise StageError(f'{which} needs --offline.slots.checkpoint: a slot model\'s slots.npz or the logdir holding '
                         'it (python -m vsg.slots writes one)')
    count = saved(slots.checkpoint).num_slots
    if not 1 <= slots.count <= count:
        raise StageError(f'offline.slots.count={slots.count} must lie in 1..{count} (the slot model\'s num_slots)')
    index = list(slots.index)
    if not index or min(index) < 0 or max(index) >= count or len(set(index)) < len(index):
        raise StageError(f'offline.slots.index={index} must be distinct slot indices in 0..{count - 1} '
                         '(the slot model\'s num_slots)')
    for key in ('folds', 'chunk'):
        if slots[key] < 1:
            raise StageError(f'offline.slots.{key}={slots[key]} must be a positive integer')
    if slots.labels < 0:
        raise StageError(f'offline.slots.labels={slots.labels} must be 0 (the smallest offline.decode.labels) or a count')


def saved(checkpoint):
    """The SlotConfig of the checkpoint (a file or a logdir), a StageError for a missing or corrupt one."""
    try:
        return store.saved(store.path_of(checkpoint))[0]
    except SlotError as e:
        raise StageError(f'offline.slots.checkpoint: {e}') from None


def load(checkpoint, example):
    """(the slot model, the frames key) for episodes like `example`; a DataError when its frames do
    not fit the model."""
    frames = data.frame_keys(example)
    if not frames:
        raise data.DataError('the data holds no uint8 [H, W, 3] frames for the slot model (collect with '
                             '--env.<suite>.obs pixels or both)')
    shape = example[frames[0]].shape[1:]
    side = saved(checkpoint).resolution
    if shape != (side, side, 3):
        raise data.DataError(f'the slot model {store.path_of(checkpoint)} takes {side}x{side}x3 frames (its resolution), '
                             f'the data\'s {frames[0]!r} frames are {"x".join(map(str, shape))}')
    from vsg import slots
    try:
        model, _ = slots.load(checkpoint)
    except SlotError as e:
        raise StageError(f'offline.slots.checkpoint: {e}') from None
    return model, frames[0]


def union(masks, chosen):
    """The sum of the chosen slots' masks [.., K, H, W] -> uint8 [.., H, W] (255: all of the pixel)."""
    return np.round(np.minimum(np.asarray(masks)[..., list(chosen), :, :].sum(-3), 1) * 255).astype(np.uint8)


def encode_episode(model, frames, chunk):
    """Slots [L, K, D] of one episode's frames."""
    slots, last = [], None
    for start in range(0, len(frames), chunk):
        part, _ = model.encode(frames[None, start:start + chunk], chunk, last)
        last = part[:, -1]
        slots.append(part[0])
    return np.concatenate(slots)


def episode_masks(model, slots, chosen, chunk):
    """The union of the chosen slots' masks [L, H, W] (uint8) decoded from an episode's slots [L, K, D]."""
    return np.concatenate([union(np.asarray(model.decode(slots[start:start + chunk])[1]), chosen)
                           for start in range(0, len(slots), chunk)])


class Live:
    """Adds the slot model's keys to batches of live observations, one env step per call: envs at
    is_first (and all on the first call) start from the initial slots, the others carry their slots.
    `masks`: the chosen slots whose masks' union data.MASKS holds, or None for no masks."""

    def __init__(self, model, frames_key, masks=None):
        self._model, self._key, self._masks = model, frames_key, masks
        self._last = None

    def __call__(self, obs):
        frames = np.asarray(obs[self._key])
        first = np.asarray(obs['is_first'], bool) | (self._last is None)
        config = self._model.config
        slots = np.zeros((len(frames), config.num_slots, config.slot_size), np.float32)
        masks = np.zeros(frames.shape[:3], np.uint8)
        for group, carried in ((first, None), (~first, None if self._last is None else self._last[~first])):
            if group.any():
                group_slots, group_masks = self._model.encode(frames[group][:, None], 1, carried)
                slots[group] = group_slots[:, 0]
                if self._masks is not None:
                    masks[group] = union(group_masks[:, 0], self._masks)
        self._last = slots
        return {**obs, data.SLOTS: slots, **({data.MASKS: masks} if self._masks is not None else {})}


def prepare(cfg, episodes, seed, logdir):
    """Runs the slot model of offline.slots.checkpoint over `episodes` (adding its keys to them) and
    chooses the slots on the run's training split (data.split with `seed`); returns (a factory of Live
    converters, the chosen slots)."""
    model, key = load(cfg.slots.checkpoint, episodes[0])
    train_eps, _ = data.split(len(episodes), cfg.test_fraction, seed)
    start, frames = time.monotonic(), sum(len(episode[key]) for episode in episodes)
    for episode in episodes:
        episode[data.SLOTS] = encode_episode(model, episode[key], cfg.slots.chunk)
    record = choose(cfg, episodes, train_eps)
    chosen, masks = record['chosen'], 'masks' in representations(cfg)
    if masks:
        for episode in episodes:
            episode[data.MASKS] = episode_masks(model, episode[data.SLOTS], chosen, cfg.slots.chunk)
    record['ms_per_frame'] = 1000 * (time.monotonic() - start) / frames  # the conversion alone
    if SEGMENTATION in episodes[0]:
        record['objects'] = held_objects(model, [episodes[e] for e in train_eps[:OBJECT_EPISODES]], cfg.slots.chunk)
    files.write_json(logdir / RECORD, record)
    held = ''.join(f"; object {obj} in slot {row['slot']} ({row['share']:.0%})"
                   for obj, row in record.get('objects', {}).items())
    print(f"slots: {frames:,} frames converted, {record['ms_per_frame']:.2f} ms per frame; keeping {chosen} "
          f"(by {cfg.slots.choose}); " + ', '.join(f"{way} {row['chosen']}" for way, row in record['ways'].items())
          + held, flush=True)
    return (lambda: Live(model, key, chosen if masks else None)), chosen


def held_objects(model, episodes, chunk):
    """{object id: {'slot': the slot holding most of its pixels, 'share': the part of them it holds}} over
    `episodes` that carry the ground-truth ids (collected with env.<suite>.segmentation true), so the
    record says which object each way of choosing kept."""
    mass = {}
    for episode in episodes:
        for start in range(0, len(episode[data.SLOTS]), chunk):
            masks = np.asarray(model.decode(episode[data.SLOTS][start:start + chunk])[1])
            for obj, held in evaluation.slot_mass(episode[SEGMENTATION][start:start + chunk], masks).items():
                mass[obj] = mass.get(obj, 0) + held
    return {str(obj): {'slot': int(held.argmax()), 'share': float(held.max() / held.sum())}
            for obj, held in sorted(mass.items())}


def _transitions(episodes, chosen):
    """(s_t, s_{t+1}, the action between them or None) over the steps of episodes `chosen`."""
    parts = [episodes[e] for e in chosen]
    now = np.concatenate([episode[data.SLOTS][:-1] for episode in parts])
    following = np.concatenate([episode[data.SLOTS][1:] for episode in parts])
    actions = np.concatenate([episode['action'][1:] for episode in parts]) if all('action' in ep for ep in parts) else None
    return now, following, actions


def choose(cfg, episodes, train_eps):
    """{'chosen': the slots kept, 'choose': the way, 'ways': {way: {'chosen', 'scores', ...}} for every
    way the data allows, 'agreement': {'a~b': choice.overlap}}."""
    slots = cfg.slots
    ways = {'index': {'chosen': [int(k) for k in slots.index]}}
    labelled = slots.labels or min(decode.label_counts(cfg.decode.labels, len(train_eps)))
    now, following, actions = _transitions(episodes, train_eps[:labelled])
    if actions is not None:
        kept, scores, growing = choice.regression_choice(now, following, actions, slots.ridge, slots.folds, slots.count)
        ways['regression'] = {'chosen': kept, 'heldout_r2': scores.tolist(), 'heldout_r2_kept': growing.tolist(),
                              'labelled_trajectories': int(min(labelled, len(train_eps)))}
    now, following, _ = _transitions(episodes, train_eps)
    share, own, scene = choice.scene_dependence_scores(now, following, slots.ridge, slots.folds)
    ways['unsupervised'] = {'chosen': choice.top(share, slots.count), 'scene_share': share.tolist(),
                            'heldout_change_mse_own': own.tolist(), 'heldout_change_mse_scene': scene.tolist()}
    if slots.choose not in ways:
        raise StageError('offline.slots.choose=regression needs true actions in the labelled training episodes; '
                         'the data holds none (choose index or unsupervised)')
    agreement = {f'{a}~{b}': choice.overlap(ways[a]['chosen'], ways[b]['chosen']) for a, b in itertools.combinations(ways, 2)}
    return {'chosen': ways[slots.choose]['chosen'], 'choose': slots.choose, 'ways': ways, 'agreement': agreement}
