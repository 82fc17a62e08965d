import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint


def test_round_trip_restores_values_and_counters(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    variables = [tf.Variable([1.0, 2.0], name='a'), tf.Variable(3, dtype=tf.int64, name='b')]
    checkpoint.save(path, variables, {'step': 42})
    fresh = [tf.Variable([0.0, 0.0], name='a'), tf.Variable(0, dtype=tf.int64, name='b')]
    assert checkpoint.load(path, fresh) == {'step': 42}
    np.testing.assert_array_equal(fresh[0].numpy(), [1.0, 2.0])
    assert int(fresh[1].numpy()) == 3
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.npz']  # no temp files left


def test_a_different_model_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, [tf.Variable([1.0, 2.0])], {'step': 1})
    other = tf.Variable([0.0, 0.0, 0.0])
    with pytest.raises(checkpoint.CheckpointMismatch, match='different config'):
        checkpoint.load(path, [other])
    np.testing.assert_array_equal(other.numpy(), [0.0, 0.0, 0.0])
    with pytest.raises(checkpoint.CheckpointMismatch, match='holds 1 variables'):
        checkpoint.load(path, [other, other])


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / 'checkpoint.npz'
    checkpoint.save(path, [tf.Variable([1.0])], {'step': 1})

    class Broken:
        name = 'broken'
        def numpy(self):
            raise RuntimeError('disk full')

    with pytest.raises(RuntimeError):
        checkpoint.save(path, [tf.Variable([5.0]), Broken()], {'step': 2})
    restored = tf.Variable([0.0])
    assert checkpoint.load(path, [restored]) == {'step': 1}
    assert restored.numpy()[0] == 1.0
