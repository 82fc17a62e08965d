"""Scores of a predicted segmentation against the envs' true label maps (the obs key `segmentation`,
docs/design.md "Observations"). Numpy only: env workers and collect processes may import it.

fg_ari is the foreground adjusted Rand index of the object-centric literature (Slot Attention, SAVi):
the adjusted Rand index of the two partitions of the pixels whose true id is not the background.
It is invariant to how either side numbers its segments, 1 for the same partition, about 0 for a
prediction unrelated to the truth (0 exactly for a constant one), and may be negative.
"""
import numpy as np


def fg_ari(true_ids, pred_ids, background=0):
    """Foreground ARI per item: float64 [N].

    true_ids, pred_ids: integer (or bool) arrays of one shape [N, ...], e.g. [N, H, W] frames or
    [N, T, H, W] videos; each of the N items is scored over all its remaining axes at once, so in a
    video an id must name the same object in every frame to score well. Only the pixels whose true id
    is not `background` count; the predicted ids there may be anything (the background, too, is just
    one more predicted segment).

    Edge cases: an item without foreground pixels is NaN (nothing to score: average with np.nanmean);
    when the two partitions are the same (up to renaming), e.g. both put the whole foreground in one
    segment, or there is a single foreground pixel, the score is 1.0, as sklearn's adjusted_rand_score
    gives (its formula is 0 / 0 there).

    Computed from pair counts: over the unordered pairs of foreground pixels, tp are together in both
    partitions, fn together in the truth only, fp together in the prediction only, tn apart in both;
    ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)), which equals the usual
    (index - expected) / (max - expected) of the contingency table. The pair counts come from the
    sizes of the true segments, the predicted segments and their intersections, counted for the
    whole batch at once.
    """
    true_ids, pred_ids = _ids(true_ids, 'true_ids'), _ids(pred_ids, 'pred_ids')
    if true_ids.shape != pred_ids.shape or true_ids.ndim < 1:
        raise ValueError(f'fg_ari takes two integer arrays of one shape [N, ...]; got {true_ids.shape} and '
                         f'{pred_ids.shape}.')
    items = true_ids.shape[0]
    true_ids, pred_ids = true_ids.reshape(items, -1), pred_ids.reshape(items, -1)
    foreground = true_ids != background
    item = np.broadcast_to(np.arange(items)[:, None], true_ids.shape)[foreground]
    true_codes, true_count = _compact(true_ids[foreground])
    pred_codes, pred_count = _compact(pred_ids[foreground])
    pixels = np.bincount(item, minlength=items).astype(np.float64)
    together_true = _pairs(item * true_count + true_codes, true_count, items)
    together_pred = _pairs(item * pred_count + pred_codes, pred_count, items)
    joint = (item * true_count + true_codes) * pred_count + pred_codes
    tp = _pairs(joint, true_count * pred_count, items)
    fn, fp = together_true - tp, together_pred - tp
    tn = pixels * (pixels - 1) / 2 - tp - fn - fp
    same = (fn == 0) & (fp == 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        ari = 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    ari = np.where(same, 1.0, ari)
    return np.where(pixels == 0, np.nan, ari)


def _ids(values, name):
    values = np.asarray(values)
    if values.dtype == bool:
        return values.astype(np.int64)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f'fg_ari: {name} must hold integer ids, got dtype {values.dtype}.')
    if values.dtype == np.uint64 and values.size and values.max() > np.iinfo(np.int64).max:
        raise ValueError(f'fg_ari: {name} holds ids beyond the int64 range.')
    return values.astype(np.int64)


def _compact(ids):
    """(codes, K): `ids` renumbered 0..K-1, K the number of distinct ids."""
    if ids.size == 0:
        return ids, 0
    low = int(ids.min())
    if int(ids.max()) - low < 4 * ids.size + 1024:  # A lookup table is cheaper than sorting.
        shifted = ids - low
        present = np.bincount(shifted) > 0
        return (np.cumsum(present) - 1)[shifted], int(present.sum())
    distinct, codes = np.unique(ids, return_inverse=True)
    return codes.reshape(-1), len(distinct)


def _pairs(keys, stride, items):
    """Per item (key // stride), the sum over its distinct keys of C(count, 2): the pixel pairs that
    share a key. Keys are non-negative."""
    if keys.size and int(keys.max()) < 4 * keys.size + 1024:
        counts = np.bincount(keys)
        values = np.flatnonzero(counts)
        counts = counts[values]
    else:
        values, counts = np.unique(keys, return_counts=True)
    counts = counts.astype(np.float64)
    return np.bincount(values // max(stride, 1), counts * (counts - 1) / 2, minlength=items)
