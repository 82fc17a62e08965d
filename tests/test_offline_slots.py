"""The offline mode's slot representations (vsg/offline/objects.py, choice.py): masked frames by hand,
live conversion matching the episodes', the three ways of choosing slots on synthetic slots, tiny
`slots` and `masks` runs through the stages, and one-line refusals of bad slot settings."""
import json
import types

import numpy as np
import pytest

from tests.test_offline import grid_data, main_error  # noqa: F401 (a fixture)
from tests.test_slots import snapshot
from vsg.offline import choice, data, objects, pipeline
from vsg.slots.settings import SlotConfig

TINY = SlotConfig(resolution=64, tokens=4, encoder_channels=4, mlp_hidden=8, num_slots=3, slot_size=8, iters_first=1,
                  iters_later=1, predictor_heads=2, decoder_grid=4, decoder_size=8, decoder_channels=4)


def save_slot_model(path, config=TINY):
    """An untrained slot model saved as vsg.slots saves one: what offline.slots.checkpoint loads."""
    from common import checkpoint
    from vsg.slots import store, train
    model = train.build(config, 0)
    path.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path / 'slots.npz', model.variables, {'step': 0}, meta=store.meta(config, []))
    return model


class StubSlots:
    """A slot model whose masks are fixed regions (slot 0 the left half, 1 the top right, 2 the bottom
    right) and whose slots count the frames since the last restart."""
    config = types.SimpleNamespace(num_slots=3, slot_size=1)

    def __init__(self):
        self.masks = np.zeros((3, 4, 4), np.float32)
        self.masks[0, :, :2] = 1
        self.masks[1, :2, 2:] = 1
        self.masks[2, 2:, 2:] = 1

    def encode(self, frames, chunk, slots=None):
        count = np.ones((len(frames), 3, 1), np.float32) if slots is None else slots + 1
        steps = [count + t for t in range(frames.shape[1])]
        return np.stack(steps, 1), np.broadcast_to(self.masks, (*frames.shape[:2], 3, 4, 4))

    def decode(self, slots):
        return None, np.broadcast_to(self.masks, (len(slots), 3, 4, 4))


def test_masks_keep_the_pixels_of_the_chosen_slots_only():
    stub = StubSlots()
    frames = np.full((5, 4, 4, 3), 200, np.uint8)
    slots = objects.encode_episode(stub, frames, chunk=2)
    np.testing.assert_array_equal(slots[:, 0, 0], [1, 2, 3, 4, 5])  # carried across chunks
    for chosen, kept in (([1], [(slice(0, 2), slice(2, 4))]), ([0, 2], [(slice(None), slice(0, 2)), (slice(2, 4), slice(2, 4))])):
        episode = {'image': frames, data.SLOTS: slots, data.MASKS: objects.episode_masks(stub, slots, chosen, chunk=2)}
        masked = data.representation('masks', episode).convert(episode)
        expected = np.zeros((4, 4), np.uint8)
        for rows, cols in kept:
            expected[rows, cols] = 200
        assert masked.dtype == np.uint8 and np.all(masked == expected[None, :, :, None]), chosen
        live = objects.Live(stub, 'image', chosen)({'image': frames[:2], 'is_first': np.array([True, True])})
        assert np.all(data.representation('masks', live).convert(live) == expected[None, :, :, None])
    vectors = data.representation('slots', episode, chosen=[2, 0]).convert(episode)
    assert vectors.shape == (5, 2) and vectors.dtype == np.float32


def test_held_objects_names_the_slot_holding_most_of_each_objects_pixels():
    ids = np.zeros((5, 4, 4), np.uint8)
    ids[:, 0, 0] = 1  # in the left half: slot 0's region
    ids[:, 2:, 3] = 2  # two pixels in the bottom right: slot 2's
    ids[:, 1, 3] = 2  # and one in the top right: slot 1's, so slot 2 holds two thirds of object 2
    episodes = [{data.SLOTS: np.zeros((5, 3, 1), np.float32), 'segmentation': ids}] * 2
    held = objects.held_objects(StubSlots(), episodes, chunk=2)  # chunks of 2, 2 and 1 frames
    assert held == {'1': {'slot': 0, 'share': 1.0}, '2': {'slot': 2, 'share': pytest.approx(2 / 3)}}


def test_the_choice_record_names_each_objects_slot_when_the_episodes_carry_ids(tmp_path, monkeypatch, capsys):
    from vsg import build
    monkeypatch.setattr(objects, 'load', lambda checkpoint, example: (StubSlots(), 'image'))
    rng = np.random.default_rng(0)
    ids = np.zeros((6, 4, 4), np.uint8)
    ids[:, 3, 3] = 1  # always in the bottom right: slot 2's region
    episodes = [{'image': np.zeros((6, 4, 4, 3), np.uint8), 'action': rng.normal(size=(6, 2)).astype(np.float32),
                 'segmentation': ids} for _ in range(4)]
    cfg = build.parse(['--configs', 'offline', '--offline.slots.checkpoint', 'stub'], need_logdir=False).offline
    objects.prepare(cfg, episodes, 0, tmp_path)
    record = json.loads((tmp_path / objects.RECORD).read_text())
    assert record['objects'] == {'1': {'slot': 2, 'share': 1.0}}
    assert 'object 1 in slot 2 (100%)' in capsys.readouterr().out


def test_live_slots_restart_at_is_first_and_are_carried_otherwise():
    live = objects.Live(StubSlots(), 'image')
    counts = []
    for first in [(True, True), (False, False), (False, True), (False, False)]:
        obs = {'image': np.zeros((2, 4, 4, 3), np.uint8), 'is_first': np.array(first)}
        counts.append(live(obs)[data.SLOTS][:, 0, 0].tolist())
    assert counts == [[1, 1], [2, 2], [3, 1], [4, 2]]


def test_live_conversion_equals_the_episodes_conversion(tmp_path):
    model = save_slot_model(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 64, 64, 3), np.uint8)
    slots = [objects.encode_episode(model, frames[e], chunk=2) for e in range(2)]
    masks = [objects.episode_masks(model, slots[e], [0, 2], chunk=2) for e in range(2)]
    live = objects.Live(model, 'image', [0, 2])
    for t in range(5):
        obs = live({'image': frames[:, t], 'is_first': np.array([t == 0, t == 0])})
        for e in range(2):
            np.testing.assert_allclose(obs[data.SLOTS][e], slots[e][t], rtol=1e-4, atol=1e-5)
            assert np.abs(obs[data.MASKS][e].astype(int) - masks[e][t]).max() <= 1  # rounded to uint8


def transitions(rng, steps=400, action_size=2):
    """Four slots of 3 dims over one trajectory, and the action taken at each step: 0 static, 1 a rotating
    distractor, 2 moved by the action, 3 a random walk unrelated to it."""
    actions = rng.uniform(-1, 1, (steps, action_size))
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    push = rng.normal(size=(action_size, 3))
    slots = np.zeros((steps + 1, 4, 3))
    slots[0] = rng.normal(size=(4, 3))
    for t in range(steps):
        slots[t + 1, 0] = slots[0, 0] + rng.normal(0, 1e-3, 3)
        slots[t + 1, 1] = rotation @ slots[t, 1]
        slots[t + 1, 2] = 0.9 * slots[t, 2] + actions[t] @ push + rng.normal(0, 0.05, 3)
        slots[t + 1, 3] = slots[t, 3] + rng.normal(0, 0.1, 3)
    return slots[:-1], slots[1:], actions


def test_regression_picks_the_slot_whose_motion_carries_the_action():
    now, following, actions = transitions(np.random.default_rng(0))
    scores = choice.regression_scores(now, following, actions, ridge=1e-3, folds=5)
    assert choice.top(scores, 1) == [2]
    assert scores[2] > 0.9 and max(scores[[0, 1, 3]]) < 0.1


def test_regression_keeps_next_the_slot_that_adds_to_the_action_not_a_copy_of_the_first():
    rng = np.random.default_rng(2)
    count = 400
    now = rng.normal(size=(count, 3, 2))
    following = now.copy()
    motion = rng.normal(size=count)
    following[:, 0, 0] += motion                                     # slot 0: moved by the action
    now[:, 1], following[:, 1] = now[:, 0], following[:, 0] + rng.normal(0, 0.1, (count, 2))  # slot 1: a noisy copy of 0
    actions = (motion + 0.5 * now[:, 2, 0])[:, None]                # slot 2 (static): what else the action follows
    alone = choice.regression_scores(now, following, actions, ridge=1e-3, folds=5)
    assert alone[0] > alone[1] > alone[2] and choice.top(alone, 2) == [0, 1]  # alone, the copy ranks second
    kept, _, growing = choice.regression_choice(now, following, actions, ridge=1e-3, folds=5, count=2)
    assert kept == [0, 2]  # but together, slot 2 adds what the copy cannot
    assert growing[0] == pytest.approx(alone[0]) and growing[1] > 0.99 > growing[0]


def test_unsupervised_picks_the_slot_whose_change_the_rest_of_the_scene_explains():
    rng = np.random.default_rng(1)
    steps = 3000
    slots = np.zeros((steps + 1, 5, 2))
    slots[0] = rng.normal(size=(5, 2))
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    for t in range(steps):
        slots[t + 1, 0] = slots[0, 0] + rng.normal(0, 1e-3, 2)                                 # static
        slots[t + 1, 1] = rotation @ slots[t, 1]                                               # its own dynamics
        slots[t + 1, 2] = slots[t, 2] + 0.3 * (slots[t, 3] - slots[t, 2]) + rng.normal(0, 0.05, 2)  # walks to 3
        slots[t + 1, 3] = slots[t, 3] + rng.normal(0, 0.1, 2)                                  # a drifting target
        slots[t + 1, 4] = rng.normal(0, 1, 2)                                                  # a flickering slot
    share, own, scene = choice.scene_dependence_scores(slots[:-1], slots[1:], ridge=1e-3, folds=5)
    assert choice.top(own, 1) == [4]  # the least predictable slot is the noise, not the agent
    assert choice.top(share, 1) == [2] and share[2] > 0.3 and max(share[[1, 3, 4]]) < 0.05
    assert np.all(scene <= own * 1.05)  # more of the scene never predicts much worse held out
    assert choice.overlap([2, 0], [0]) == 1.0 and choice.overlap([1], [2]) == 0.0


def offline_run(grid_data, logdir, checkpoint, *flags):
    from vsg.offline import pipeline
    pipeline.main(['--configs', 'offline', 'offline_debug', '--offline.data', str(grid_data), '--logdir', str(logdir),
                   '--offline.slots.checkpoint', str(checkpoint), *map(str, flags)])


def test_slots_and_masks_runs_go_through_the_stages(grid_data, tmp_path, capsys):
    save_slot_model(tmp_path / 'slot_model')
    logdir = tmp_path / 'slots'
    offline_run(grid_data, logdir, tmp_path / 'slot_model', '--offline.repr', 'slots', '--offline.slots.choose',
                'regression', '--offline.slots.count', 2)
    record = json.loads((logdir / 'slots_choice.json').read_text())
    assert set(record['ways']) == {'index', 'regression', 'unsupervised'} and record['choose'] == 'regression'
    assert len(record['chosen']) == 2 and record['chosen'] == record['ways']['regression']['chosen']
    assert record['ways']['regression']['labelled_trajectories'] == 1  # the smallest offline.decode.labels
    assert set(record['agreement']) == {'index~regression', 'index~unsupervised', 'regression~unsupervised'}
    assert 'objects' not in record  # these episodes carry no segmentation ids to name the objects by
    results = json.loads((logdir / 'results.json').read_text())
    assert results['repr'] == 'slots' and results['slots']['chosen'] == record['chosen']
    assert results['policy_repr'] == 'pixels'  # by default a slot representation's policies read the frames
    with np.load(logdir / 'bc_action.npz') as saved:  # so the clone has a conv encoder over 2 stacked RGB frames
        kernels = [saved[name] for name in saved.files if 'action_policy/' in name and saved[name].ndim == 4]
    assert kernels and kernels[0].shape[2] == 3 * 2
    assert set(results['returns']) == {'random', 'bc', 'latent_m1', 'latent_m2', 'latent_m5', 'bc_m1', 'bc_m2', 'bc_m5'}
    assert 'Slots kept: ' in (logdir / 'results.md').read_text()
    assert 'ms per frame' in capsys.readouterr().out

    # Stage by stage, with policies on the slots (offline.bc.repr), so the eval runs the slot model live.
    logdir = tmp_path / 'masks'
    for stage in pipeline.STAGES:
        offline_run(grid_data, logdir, tmp_path / 'slot_model', '--offline.repr', 'masks', '--offline.slots.index', '1,2',
                    '--offline.bc.repr', 'slots', '--offline.stage', stage)
    assert json.loads((logdir / 'slots_choice.json').read_text())['chosen'] == [1, 2]
    results = json.loads((logdir / 'results.json').read_text())
    assert results['repr'] == 'masks' and results['policy_repr'] == 'slots'
    assert set(results['returns']) == {'random', 'bc', 'latent_m1', 'latent_m2', 'latent_m5', 'bc_m1', 'bc_m2', 'bc_m5'}


def test_the_cloned_policies_read_the_frames_unless_told_otherwise():
    cfg = lambda repr_name, bc_repr='': types.SimpleNamespace(repr=repr_name, bc=types.SimpleNamespace(repr=bc_repr))
    assert objects.representations(cfg('slots')) == ('slots', 'pixels')
    assert objects.representations(cfg('masks')) == ('masks', 'pixels')
    assert objects.representations(cfg('state')) == ('state', 'state')
    assert objects.representations(cfg('masks', 'slots')) == ('masks', 'slots')
    assert objects.needed(cfg('pixels', 'slots')) and not objects.needed(cfg('pixels'))


@pytest.mark.parametrize('flags, message', [
    (['--offline.repr', 'slots'], 'offline.repr slots needs --offline.slots.checkpoint'),
    (['--offline.repr', 'masks', '--offline.slots.checkpoint', 'NOWHERE'], 'offline.slots.checkpoint: '),
    (['--offline.repr', 'slots', '--offline.slots.checkpoint', 'CORRUPT'], 'offline.slots.checkpoint: '),
    (['--offline.repr', 'slots', '--offline.slots.checkpoint', 'SMALL'],
     "takes 32x32x3 frames (its resolution), the data's 'image' frames are 64x64x3"),
    (['--offline.repr', 'slots', '--offline.slots.checkpoint', 'GOOD', '--offline.slots.index', '3'],
     'offline.slots.index=[3] must be distinct slot indices in 0..2'),
    (['--offline.repr', 'slots', '--offline.slots.checkpoint', 'GOOD', '--offline.slots.index', '1,1'],
     'offline.slots.index=[1, 1] must be distinct slot indices in 0..2'),
    (['--offline.repr', 'masks', '--offline.slots.checkpoint', 'GOOD', '--offline.slots.count', '4'],
     'offline.slots.count=4 must lie in 1..3'),
    (['--offline.bc.repr', 'masks'], 'offline.bc.repr masks needs --offline.slots.checkpoint'),
    (['--offline.bc.repr', 'frames'], "offline.bc.repr='frames' is not allowed; choose ''"),
    (['--offline.slots.choose', 'eye'], "offline.slots.choose='eye' is not allowed; choose one of index, regression, "
                                        'unsupervised'),
])
def test_bad_slot_settings_are_one_line_and_leave_the_data_alone(grid_data, tmp_path, flags, message):
    save_slot_model(tmp_path / 'good')
    save_slot_model(tmp_path / 'small', SlotConfig(**{**TINY.as_dict(), 'resolution': 32}))
    (tmp_path / 'corrupt.npz').write_bytes(b'PK\x03\x04 cut short')
    places = {'NOWHERE': tmp_path / 'nowhere.npz', 'CORRUPT': tmp_path / 'corrupt.npz', 'SMALL': tmp_path / 'small',
              'GOOD': tmp_path / 'good'}
    before = snapshot(grid_data)
    error = main_error(['--offline.data', grid_data, '--logdir', tmp_path / 'run', '--offline.stage', 'lapo',
                        *[places.get(flag, flag) for flag in flags]])
    assert message in error
    assert snapshot(grid_data) == before
