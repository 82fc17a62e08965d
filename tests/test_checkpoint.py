import types

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint
from common import config as config_lib
from common import nets

OBS = {'image': gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)}
ACT = {'action': gymnasium.spaces.Box(-1, 1, (2,), np.float32)}


def make_agent(*flags):
    from vsg.agent import Agent
    return Agent(OBS, ACT, config_lib.load(['--configs', 'debug', *flags]))


def randomize(variables, seed):
    rng = np.random.default_rng(seed)
    for v in variables:
        value = v.numpy()
        if np.issubdtype(value.dtype, np.floating):
            v.assign(rng.normal(size=value.shape).astype(value.dtype))


def save_old_format(path, names, values, step):
    """What checkpoint.save wrote before variables were keyed by path."""
    arrays = {f'var{i}': np.asarray(value) for i, value in enumerate(values)}
    np.savez(path, names=np.array(names), counter_step=np.int64(step), **arrays)


def test_round_trip_restores_values_and_counters(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    variables = [tf.Variable([1.0, 2.0], name='a'), tf.Variable(3, dtype=tf.int64, name='b')]
    checkpoint.save(path, variables, {'step': 42})
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ['counters/step', 'variables/a', 'variables/b']
    fresh = [tf.Variable(0, dtype=tf.int64, name='b'), tf.Variable([0.0, 0.0], name='a')]
    assert checkpoint.load(path, fresh) == {'step': 42}
    np.testing.assert_array_equal(fresh[1].numpy(), [1.0, 2.0])
    assert int(fresh[0].numpy()) == 3
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.npz']  # no temp files left


def test_same_shape_variables_never_load_swapped(tmp_path):
    def critics():
        made = [nets.MLP(1, 4, 'elu', 1, name=name) for name in ('critic', 'target_critic')]
        for net in made:
            net(tf.zeros([1, 3]))
        return made

    critic, target = critics()
    randomize(critic.variables, 0)
    randomize(target.variables, 1)
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, critic.variables + target.variables, {'step': 1})
    # The same entries written in the opposite order, as a reordered model would write them.
    with np.load(path, allow_pickle=False) as data:
        np.savez(path, **{name: data[name] for name in reversed(data.files)})

    fresh_critic, fresh_target = critics()  # Keras numbers these layers differently: dense_2, ...
    checkpoint.load(path, fresh_target.variables + fresh_critic.variables)
    for saved, restored in ((critic, fresh_critic), (target, fresh_target)):
        for a, b in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keys_follow_the_model_structure_not_keras_numbering():
    first, second = make_agent(), make_agent()
    keys = checkpoint.keys(first.variables)
    assert keys == checkpoint.keys(second.variables)
    assert second.wm.encoder.variables[0].path != first.wm.encoder.variables[0].path
    assert len(set(keys)) == len(keys)
    assert {'encoder/conv2d/kernel', 'critic/dense_1/bias', 'target_critic/dense_1/bias', 'updates',
            'model_opt/encoder/conv2d/kernel/momentum', 'actor_opt/actor/dense/bias/velocity'} <= set(keys)


def test_variables_sharing_a_key_are_refused(tmp_path):
    with pytest.raises(ValueError, match='share the checkpoint keys x'):
        checkpoint.save(tmp_path / 'checkpoint.npz', [tf.Variable(1.0, name='x'), tf.Variable(2.0, name='x')], {})
    assert not list(tmp_path.iterdir())


def test_a_different_model_is_refused_in_one_line_and_left_untouched(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, [tf.Variable([1.0, 2.0], name='a'), tf.Variable(1.0, name='b')], {'step': 1})
    other = [tf.Variable([0.0, 0.0, 0.0], name='a'), tf.Variable(0.0, name='c')]
    with pytest.raises(checkpoint.CheckpointMismatch) as error:
        checkpoint.load(path, other)
    message = str(error.value)
    assert '\n' not in message and str(path) in message and 'different config' in message
    assert 'missing c' in message and 'unexpected b' in message and 'other shape a (2,) vs (3,) here' in message
    np.testing.assert_array_equal(other[0].numpy(), [0.0, 0.0, 0.0])


def test_encoder_loads_into_an_agent_with_other_actor_sizes(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    trained = make_agent()
    randomize(trained.variables, 0)
    checkpoint.save(path, trained.variables, {'step': 5})
    fresh = make_agent('--actor.units', '32', '--actor.layers', '2', '--pred_cont', 'False')

    with pytest.raises(checkpoint.CheckpointMismatch, match='missing actor/dense_2/kernel'):
        checkpoint.load(path, fresh.variables)
    assert checkpoint.load_partial(path, fresh.wm.encoder.variables, 'encoder/') == ([], [])
    for a, b in zip(trained.wm.encoder.variables, fresh.wm.encoder.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    missing, unexpected = checkpoint.load_partial(path, fresh.wm.variables, '')
    assert missing == [] and 'cont_head/dense/kernel' in unexpected and 'actor/dense/kernel' in unexpected
    np.testing.assert_array_equal(trained.wm.reward_head.variables[0].numpy(), fresh.wm.reward_head.variables[0].numpy())

    before = [v.numpy() for v in fresh.ac.actor.variables]
    with pytest.raises(checkpoint.CheckpointMismatch, match='other shape actor/dense/kernel'):
        checkpoint.load_partial(path, fresh.ac.actor.variables, 'actor/')
    for value, v in zip(before, fresh.ac.actor.variables):
        np.testing.assert_array_equal(value, v.numpy())


def test_old_positional_checkpoints_convert_by_their_names(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    saved = make_agent()
    randomize(saved.variables, 0)
    # Stored in another order than the model's: the names, not the positions, decide.
    order = list(reversed(range(len(saved.variables))))
    names = [getattr(v, 'path', None) or v.name for v in saved.variables]  # as the old format stored them
    save_old_format(path, [names[i] for i in order], [saved.variables[i].numpy() for i in order], step=7)
    fresh = make_agent()  # built second, so its Keras paths are numbered differently
    assert checkpoint.load(path, fresh.variables) == {'step': 7}
    for a, b in zip(saved.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_old_checkpoints_with_repeated_names_load_by_position_only_in_the_same_order(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    save_old_format(path, ['Variable:0', 'Variable:0'], [[1.0], [2.0]], step=3)
    same = [tf.Variable([0.0]), tf.Variable([0.0])]
    assert checkpoint.load(path, same) == {'step': 3}
    assert [v.numpy()[0] for v in same] == [1.0, 2.0]
    with pytest.raises(checkpoint.CheckpointMismatch, match='cannot be told apart'):
        checkpoint.load(path, [tf.Variable([0.0], name='a'), tf.Variable([0.0], name='b')])


def test_kept_checkpoints_rotate(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    variable = tf.Variable(0.0, name='x')
    for step in range(1, 5):
        checkpoint.save(path, [variable], {'step': step}, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['checkpoint.1.npz', 'checkpoint.2.npz', 'checkpoint.npz']
    assert [checkpoint.load(p, [variable])['step'] for p in [path, *checkpoint.kept_copies(path)]] == [4, 3, 2]


def test_truncated_checkpoint_falls_back_to_the_newest_readable_copy(tmp_path, capsys):
    path = tmp_path / 'checkpoint.npz'
    variable = tf.Variable(0.0, name='x')
    for step in range(1, 4):
        variable.assign(float(step))
        checkpoint.save(path, [variable], {'step': step}, keep=3)
    for broken in (path, checkpoint.kept_copies(path)[0]):
        broken.write_bytes(broken.read_bytes()[:100])
    assert checkpoint.load(path, [variable]) == {'step': 1} and variable.numpy() == 1.0
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith('warning: checkpoint ') for line in warnings)
    assert f'{path} is unreadable' in warnings[0] and warnings[0].endswith(f'falling back to {tmp_path / "checkpoint.1.npz"}')


def test_truncated_checkpoint_without_a_copy_stops_the_run_in_one_line(tmp_path):
    from vsg import build
    path = tmp_path / build.CHECKPOINT
    checkpoint.save(path, [tf.Variable(1.0, name='x')], {'step': 1})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(checkpoint.CheckpointUnreadable) as error:
        checkpoint.load(path, [tf.Variable(0.0, name='x')])
    assert str(error.value).startswith(f'checkpoint {path} is unreadable (BadZipFile') and '\n' not in str(error.value)

    env = types.SimpleNamespace(obs_space=OBS, act_space=ACT)
    with pytest.raises(SystemExit) as stop:
        build.make_agent(config_lib.load(['--configs', 'debug']), env, tmp_path)
    assert str(stop.value) == f'error: {error.value}'


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, [tf.Variable([1.0], name='a')], {'step': 1}, keep=2)

    class Broken:
        name = 'broken'
        def numpy(self):
            raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        checkpoint.save(path, [tf.Variable([5.0], name='a'), Broken()], {'step': 2}, keep=2)
    restored = tf.Variable([0.0], name='a')
    assert checkpoint.load(path, [restored]) == {'step': 1}
    assert restored.numpy()[0] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.npz']
