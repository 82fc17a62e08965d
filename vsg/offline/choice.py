"""Which object slots an offline representation keeps, scored slot by slot on transitions
(slots s_t [N, K, D] and s_{t+1} of the same episodes). No TensorFlow here.

- `regression` (few labels): a ridge regression from one slot's vectors at t and t+1 to the true
  action taken between them; a slot scores its held-out R² (cross-validated over `folds` contiguous
  blocks of the transitions, which keeps the steps of an episode mostly together). The controlled
  object's slot is the one whose motion tells the action.
- `unsupervised` (no labels): a ridge forward model predicts each slot's change s_{t+1} - s_t from
  s_t alone; a slot scores the held-out error it leaves (summed over its dimensions, cross-validated
  as above). A static slot barely changes, and a distractor that moves by its own dynamics (drifting,
  bouncing, rotating) changes as its present state says, so both leave little error; the object the
  agent moves changes by the action, which s_t does not hold, so its change stays unpredicted. The
  error is compared across slots in their own units, which one slot model gives all slots alike.
  Noise that no model predicts (a flickering slot) would score as high: the limit of this choice.

Both keep the `count` best-scoring slots, best first.
"""
import numpy as np

from vsg.offline import probe

WAYS = ('index', 'regression', 'unsupervised')


def _held_out(features, targets, ridge, folds):
    """[N, T] predictions of `targets` [N, T] from `features` [N, F], each block of the `folds`
    contiguous blocks predicted by a ridge fit on the others."""
    predictions = np.empty_like(targets, dtype=np.float64)
    for block in np.array_split(np.arange(len(features)), min(folds, len(features))):
        rest = np.setdiff1d(np.arange(len(features)), block)
        weights, bias = probe.fit(features[rest], targets[rest], ridge)
        predictions[block] = features[block] @ weights + bias
    return predictions


def regression_scores(slots, following, actions, ridge, folds):
    """Held-out R² [K] of the true actions [N, A] from each slot's [s_t, s_{t+1}]."""
    actions = np.asarray(actions, np.float64)
    total = ((actions - actions.mean(0)) ** 2).sum()
    scores = []
    for k in range(slots.shape[1]):
        features = np.concatenate([slots[:, k], following[:, k]], -1).astype(np.float64)
        error = ((_held_out(features, actions, ridge, folds) - actions) ** 2).sum()
        scores.append(1 - error / max(total, 1e-12))
    return np.array(scores)


def unpredictability_scores(slots, following, ridge, folds):
    """Held-out mean squared error [K] (summed over a slot's dimensions) of each slot's change
    predicted from the slot alone."""
    scores = []
    for k in range(slots.shape[1]):
        now = slots[:, k].astype(np.float64)
        change = following[:, k].astype(np.float64) - now
        scores.append(((_held_out(now, change, ridge, folds) - change) ** 2).sum(-1).mean())
    return np.array(scores)


def top(scores, count):
    """The indices of the `count` highest scores, best first."""
    return [int(k) for k in np.argsort(-np.asarray(scores), kind='stable')[:count]]


def overlap(first, second):
    """The share of the smaller choice that the other one also holds (1: one contains the other)."""
    return len(set(first) & set(second)) / max(1, min(len(first), len(second)))
