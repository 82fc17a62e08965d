"""What the slot model is judged by on held-out windows: the reconstruction error, the foreground
adjusted Rand index (FG-ARI) of its masks against the episodes' segmentation ids beside that of a
fixed grid of as many regions, and a video of frames, reconstructions and each slot's share; on
held-out episodes, how firmly each object keeps one slot index (what choosing slots by index needs).
"""
import math

import numpy as np

from common import segmentation


def fg_ari(true_ids, pred_ids):
    """Per-window FG-ARI [N] of ids [N, T, H, W] (each window scored as one video, so a slot must keep
    its object over time)."""
    return segmentation.fg_ari(true_ids, pred_ids, background=0)


def slot_mass(true_ids, masks):
    """{object id: [K] the mass of each slot's mask on that object's pixels} over all the frames given;
    true_ids [.., H, W] (0: background, left out), masks [.., K, H, W] of the same leading shape."""
    slots = masks.shape[-3]
    held = np.moveaxis(np.asarray(masks, np.float64), -3, -1).reshape(-1, slots)  # [pixels, K]
    true_ids = np.asarray(true_ids).reshape(-1)
    return {int(obj): held[true_ids == obj].sum(0) for obj in np.unique(true_ids[true_ids != 0])}


def slot_identity(true_ids, masks):
    """The share of each object's pixels that the one slot holding most of it holds, over all the
    frames given (of every episode), averaged over the objects present; NaN without any. 1 when slot k
    is the same object in every frame of every episode; near 1/K when objects wander between slots
    (FG-ARI does not see a slot that holds another object in each video). Arguments as slot_mass."""
    shares = [mass.max() / mass.sum() for mass in slot_mass(true_ids, masks).values()]
    return float(np.mean(shares)) if shares else math.nan


def predicted_ids(masks):
    """masks [.., K, H, W] -> the slot holding each pixel [.., H, W] (argmax over slots)."""
    return np.argmax(masks, axis=-3)


def grid_ids(shape, regions):
    """ids [.., H, W] of a fixed split of the frame into `regions` cells, rows x columns with rows the
    largest divisor of `regions` up to its square root (6: 2 x 3): the baseline FG-ARI compares with."""
    rows = max(d for d in range(1, math.isqrt(regions) + 1) if regions % d == 0)
    cols = regions // rows
    height, width = shape[-2:]
    ids = (np.arange(height)[:, None] * rows // height) * cols + np.arange(width)[None, :] * cols // width
    return np.broadcast_to(ids, shape)


def to_uint8(images):
    """Images in [-0.5, 0.5] -> uint8 [0, 255]."""
    return np.clip((np.asarray(images) + 0.5) * 255, 0, 255).round().astype(np.uint8)


def attention_video(frames, masks, weights, bar=4):
    """Where an agent looks, from frames uint8 [T, H, W, 3], each part's mask [T, K, H, W] and the
    feature's weight on each part [T, K]: uint8 [T, H + bar, (2 + K) W, 3], a row of the frame | the
    frame lit by the weighted masks (sum_k w_k m_k, scaled to its brightest pixel; 0.2 floor so the rest
    stays visible) | each part's pixels (frame x mask), with a bar below each part as long as its weight."""
    frames, masks, weights = np.asarray(frames, np.float32), np.asarray(masks, np.float32), np.asarray(weights)
    steps, height, width = frames.shape[:3]
    looked = np.einsum('tk,tkhw->thw', weights, masks)
    looked /= np.maximum(looked.max((1, 2), keepdims=True), 1e-8)
    lit = frames * (0.2 + 0.8 * looked[..., None])
    parts = np.moveaxis(frames[:, None] * masks[..., None], 1, 0)               # [K, T, H, W, 3]
    lengths = np.round(weights * width).astype(int).T                          # [K, T]
    lit_bars = np.arange(width) < lengths[..., None]                           # [K, T, W]
    strips = np.zeros([2 + len(parts), steps, bar, width, 3], np.float32)
    strips[2:] = 255 * lit_bars[:, :, None, :, None]
    panels = np.concatenate([np.stack([frames, lit, *parts]), strips], 2)      # [2 + K, T, H + bar, W, 3]
    return np.concatenate(list(panels), 2).round().astype(np.uint8)


def video(frames, recon, masks, rgb):
    """uint8 [T, N H, (2 + K) W, 3]: for each of N windows a row of frame | reconstruction | each
    slot's mask x its RGB (black where the slot is absent), as a GIF's frames."""
    shares = to_uint8(rgb) * masks[..., None]                                    # [N, T, K, H, W, 3]
    panels = [frames, to_uint8(recon), *np.moveaxis(shares, 2, 0).round().astype(np.uint8)]  # each [N, T, H, W, 3]
    rows = np.concatenate(panels, axis=3)                                         # [N, T, H, (2 + K) W, 3]
    return np.concatenate(list(rows), axis=1)                                     # [T, N H, (2 + K) W, 3]
