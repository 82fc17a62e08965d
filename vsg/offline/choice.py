"""Which object slots an offline representation keeps, scored slot by slot on transitions
(slots s_t [N, K, D] and s_{t+1} of the same episodes). No TensorFlow here.

- `regression` (few labels): a ridge regression from slots' vectors at t and t+1 to the true action
  taken between them, scored by its held-out R² (cross-validated over `folds` contiguous blocks of
  the transitions, which keeps the steps of an episode mostly together). The first slot kept is the
  one that tells the action best alone (the controlled object's, whose motion shows it); each next
  one is the slot that adds most to the R² of the slots kept so far (greedy forward selection), so a
  second copy of the agent's slot adds nothing, while what the action depends on (a goal the
  agent walks to) does.
- `unsupervised` (no labels): a ridge forward model predicts each slot's change s_{t+1} - s_t from
  s_t alone; a slot scores the held-out error it leaves (summed over its dimensions, cross-validated
  as above). A static slot barely changes, and a distractor that moves by its own dynamics (drifting,
  bouncing, rotating) changes as its present state says, so both leave little error; the object the
  agent moves changes by the action, which s_t does not hold, so its change stays unpredicted. The
  error is compared across slots in their own units, which one slot model gives all slots alike.
  Noise that no model predicts (a flickering slot) would score as high: the limit of this choice.

Both keep `count` slots, best first.
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


def _r2(slots, following, actions, kept, ridge, folds):
    """Held-out R² of the true actions [N, A] from the `kept` slots' [s_t, s_{t+1}] together."""
    actions = np.asarray(actions, np.float64)
    features = np.concatenate([np.concatenate([slots[:, k], following[:, k]], -1) for k in kept], -1)
    error = ((_held_out(features.astype(np.float64), actions, ridge, folds) - actions) ** 2).sum()
    return 1 - error / max(((actions - actions.mean(0)) ** 2).sum(), 1e-12)


def regression_scores(slots, following, actions, ridge, folds):
    """Held-out R² [K] of the true actions [N, A] from each slot's [s_t, s_{t+1}] alone."""
    return np.array([_r2(slots, following, actions, [k], ridge, folds) for k in range(slots.shape[1])])


def regression_choice(slots, following, actions, ridge, folds, count):
    """(the `count` slots kept by greedy forward selection, best first; each slot's held-out R² alone
    [K]; the held-out R² of the kept slots together after each pick [count]). Ties go to the lower index."""
    alone = regression_scores(slots, following, actions, ridge, folds)
    kept, growing = [int(np.argmax(alone))], [float(np.max(alone))]
    while len(kept) < count:
        rest = [k for k in range(slots.shape[1]) if k not in kept]
        scores = [_r2(slots, following, actions, kept + [k], ridge, folds) for k in rest]
        kept.append(rest[int(np.argmax(scores))])
        growing.append(float(np.max(scores)))
    return kept, alone, np.array(growing)


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
