"""The slot model's training run: windows of slots.window frames from the training episodes,
slots.batch_size of them per update, Adam with a linear warmup and global-norm gradient clipping, in
the offline mode's resumable loop (vsg/offline/loop.py) under the checkpoint name `slots`.

Every slots.log_every updates: the training loss and ms per update, and on the held-out windows the
reconstruction MSE (`eval/mse`), the FG-ARI of the masks when the episodes hold `segmentation`
(`eval/fg_ari`; the fixed grid's, `eval/fg_ari_grid`, once at the start), how firmly each object keeps one
slot index over the held-out episodes (`eval/slot_identity`, the same condition) and a video (frames |
reconstructions | each slot's mask x RGB) to TensorBoard and LOGDIR/slots_eval.gif.
"""
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from common import optim
from common import video as video_lib
from vsg.offline import bc, loop
from vsg.slots import data as data_lib
from vsg.slots import evaluation, store
from vsg.slots.model import SlotModel
from vsg.slots.settings import SlotConfig, SlotError

EVAL_GIF = 'slots_eval.gif'
VIDEO_WINDOWS = 4  # held-out windows shown in the video
IDENTITY_FRAMES = 100  # frames of each held-out episode that eval/slot_identity encodes
ADAM_EPSILON = 1e-8


class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """`lr` reached linearly over the first `steps` updates, then held."""

    def __init__(self, lr, steps):
        self.lr, self.steps = lr, steps

    def __call__(self, step):
        return self.lr * tf.minimum(1.0, (tf.cast(step, tf.float32) + 1) / max(self.steps, 1))

    def get_config(self):
        return {'lr': self.lr, 'steps': self.steps}


def build(config, seed):
    """The slot model of SlotConfig `config` with every variable created, its init seeded."""
    keras.utils.set_random_seed(seed)
    model = SlotModel(config, seed=seed)
    model.build_all()
    return model


def optimizer(cfg):
    """Adam on the `slots` block's lr (after `warmup` updates), gradients clipped to global norm `clip`."""
    return optim.Optimizer('slots_opt', Warmup(cfg.lr, cfg.warmup), ADAM_EPSILON, cfg.clip, 0.0)


def make_update(model, opt):
    """A compiled update on a batch (frames,) -> metrics (the loss and the gradient norm)."""
    return bc.make_update(model, opt, lambda model, frames: model.loss(frames, training=True))


def timed(update):
    """`update` with its wall-clock time as the metric ms_per_step, from its second call on (the first
    one traces the graph)."""
    calls = [0]

    def run(batch):
        start = time.perf_counter()
        metrics = {key: np.asarray(value) for key, value in update(batch).items()}
        if calls[0]:
            metrics['ms_per_step'] = np.float32(1000 * (time.perf_counter() - start))
        calls[0] += 1
        return metrics
    return run


def evaluator(model, data, episodes, cfg, logdir):
    """evaluate() -> the held-out metrics and video; also writes LOGDIR/slots_eval.gif."""
    starts = data_lib.eval_starts(data, episodes, cfg.window, cfg.eval_windows)
    frames = data.windows(starts, cfg.window)
    ids = None if data.segmentation is None else data.windows(starts, cfg.window, data_lib.SEGMENTATION)

    @tf.function
    def forward(frames):
        recon, masks, rgb = model.decode_slots(model.track(frames, training=False))
        return tf.reduce_mean((recon - (tf.cast(frames, tf.float32) / 255 - 0.5)) ** 2), recon, masks, rgb

    # The held-out episodes' first IDENTITY_FRAMES frames, encoded as whole videos, for eval/slot_identity.
    videos = [(data.frames[data.starts[e]:data.ends[e]][:IDENTITY_FRAMES][None],
               data.segmentation[data.starts[e]:data.ends[e]][:IDENTITY_FRAMES])
              for e in (episodes if data.segmentation is not None else [])]

    def evaluate():
        mse, recon, masks, rgb = (x.numpy() for x in forward(tf.constant(frames)))
        metrics = {'eval/mse': mse}
        scores = None if ids is None else evaluation.fg_ari(ids, evaluation.predicted_ids(masks))
        if scores is not None and not np.all(np.isnan(scores)):  # NaN: windows with no foreground
            metrics['eval/fg_ari'] = np.nanmean(scores)
        if videos:
            masks_ids = [(model.encode(video)[1][0], video_ids) for video, video_ids in videos]
            identity = evaluation.slot_identity(np.concatenate([i for _, i in masks_ids]),
                                                np.concatenate([m for m, _ in masks_ids]))
            if not np.isnan(identity):
                metrics['eval/slot_identity'] = identity
        shown = slice(0, VIDEO_WINDOWS)
        clip = evaluation.video(frames[shown], recon[shown], masks[shown], rgb[shown])
        video_lib.write_gif(logdir / EVAL_GIF, clip, fps=4)
        metrics['eval/video'] = clip
        return metrics
    return evaluate, frames, ids


def check_resume(path, config, held_out):
    """Refuses (SlotError) to resume a checkpoint of other sizes or other held-out episodes."""
    saved, meta = store.saved(path)
    store.check_fits(path, saved, **config.as_dict())
    if meta.get('held_out') != list(held_out):
        raise SlotError(f'{path} was trained with other held-out episodes (the data directory or the seed changed); '
                        'use a new --logdir')


def run(config, data):
    cfg = config.slots
    sizes = SlotConfig.of(cfg)
    logdir = pathlib.Path(config.logdir).expanduser()
    if logdir.exists() and not logdir.is_dir():
        raise SlotError(f'--logdir {logdir} is a file, not a directory')
    train_eps, test_eps = data_lib.split(data.num_episodes, cfg.test_episodes, config.seed)
    held_out = [data.names[e] for e in test_eps]
    path = loop.checkpoint_path(logdir, store.NAME)
    if path.exists():
        check_resume(path, sizes, held_out)
    logdir.mkdir(parents=True, exist_ok=True)
    config.save(logdir / 'config.yaml')
    side = sizes.resolution
    print(f'slots: {data.num_episodes} episodes ({len(train_eps)} training, {len(test_eps)} held out) from {cfg.data}, '
          f'{len(data.frames):,} frames of {side}x{side}' + (', with segmentation' if data.segmentation is not None else '')
          + f'; {sizes.num_slots} slots of {sizes.slot_size}, {sizes.tokens}x{sizes.tokens} tokens, decoder '
          f'{sizes.decoder_grid}->{sizes.decoder_size} px x {sizes.decoder_channels} channels; '
          f'batch {cfg.batch_size} x {cfg.window} frames', flush=True)

    model = build(sizes, config.seed)
    opt = optimizer(cfg)
    update = timed(make_update(model, opt))
    done = loop.updates(logdir, store.NAME) or 0
    batches = data_lib.sampler(data, train_eps, cfg.window, cfg.batch_size, np.random.default_rng([config.seed, done]))
    logger = loop.make_logger(logdir)
    evaluate, frames, ids = evaluator(model, data, test_eps, cfg, logdir)
    try:
        if ids is not None:
            grid = evaluation.fg_ari(ids, evaluation.grid_ids(ids.shape, sizes.num_slots))
            print(f'slots: FG-ARI of a fixed grid of {sizes.num_slots} regions on the {len(frames)} held-out '
                  f'windows: {np.nanmean(grid):.3f}', flush=True)
            if not done:
                loop.log(logger, {'eval/fg_ari_grid': np.nanmean(grid)}, step=0)
        loop.train(store.NAME, logdir, [*model.variables, *opt.variables], update, batches, cfg.steps, cfg.save_every,
                   cfg.log_every, logger, evaluate, meta=store.meta(sizes, held_out))
    finally:
        logger.close()
