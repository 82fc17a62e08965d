"""Which object slots an offline representation keeps, scored slot by slot on transitions
(slots s_t [N, K, D] and s_{t+1} of the same episodes). No TensorFlow here.

- `regression` (few labels): a ridge regression from slots' vectors at t and t+1 to the true action
  taken between them, scored by its held-out R² (cross-validated over `folds` contiguous blocks of
  the transitions, which keeps the steps of an episode mostly together). The first slot kept is the
  one that tells the action best alone (the controlled object's, whose motion shows it); each next
  one is the slot that adds most to the R² of the slots kept so far (greedy forward selection), so a
  second copy of the agent's slot adds nothing, while what the action depends on (a goal the
  agent walks to) does.
- `unsupervised` (no labels): the share of each slot's change s_{t+1} - s_t that the rest of the scene
  explains beyond the slot itself: 1 - e_scene / e_own, with e_own the held-out error of a ridge model
  predicting the change from the slot alone and e_scene from every slot at t (cross-validated as above).
  The object an agent moves changes as its policy reacts to the scene (the agent walks to the target),
  so the other slots predict its change; a static slot, an object moving by its own dynamics (drifting,
  rotating) and one moving at random (a random-walk distractor, a flickering background slot) owe the
  rest of the scene nothing. The assumption is data from a policy that reacts to what it sees (an
  expert's videos, the setting of learning from demonstrations); a random policy's agent scores like a
  distractor, and an object pushed by the agent or coupled to it by physics scores too. A slot's own
  unpredictability alone does not work: on the gridworld the random distractors and the background slot
  are less predictable than the agent (docs/results/offline.md).

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


def scene_dependence_scores(slots, following, ridge, folds):
    """(the share [K] of each slot's change that the other slots explain, 1 - scene / own; the held-out
    mean squared errors (summed over a slot's dimensions) of the change predicted from the slot alone,
    own [K], and from every slot, scene [K])."""
    scene_features = slots.reshape(len(slots), -1).astype(np.float64)
    own, scene = [], []
    for k in range(slots.shape[1]):
        now = slots[:, k].astype(np.float64)
        change = following[:, k].astype(np.float64) - now
        own.append(((_held_out(now, change, ridge, folds) - change) ** 2).sum(-1).mean())
        scene.append(((_held_out(scene_features, change, ridge, folds) - change) ** 2).sum(-1).mean())
    own, scene = np.array(own), np.array(scene)
    return 1 - scene / np.maximum(own, 1e-12), own, scene


def top(scores, count):
    """The indices of the `count` highest scores, best first."""
    return [int(k) for k in np.argsort(-np.asarray(scores), kind='stable')[:count]]


def overlap(first, second):
    """The share of the smaller choice that the other one also holds (1: one contains the other)."""
    return len(set(first) & set(second)) / max(1, min(len(first), len(second)))
