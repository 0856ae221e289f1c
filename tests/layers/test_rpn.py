import keras
import numpy as np
import tensorflow as tf

from keras_det.layers import AnchorGenerator
from keras_det.ops.anchors import grid_anchors


def test_anchor_generator_matches_op_and_dynamic_shape():
    layer = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0, 2.0), stride=8)
    assert layer.num_anchors_per_location == 6
    out = layer(tf.zeros([2, 5, 7, 3]))
    np.testing.assert_allclose(out, grid_anchors((5, 7), 8, (32, 64), (0.5, 1.0, 2.0)))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def f(x):
        return layer(x)

    assert f(tf.zeros([1, 3, 4, 3])).shape == (3 * 4 * 6, 4)
    assert f(tf.zeros([1, 6, 2, 3])).shape == (6 * 2 * 6, 4)


def test_anchor_generator_config_round_trip():
    layer = AnchorGenerator(sizes=(16,), aspect_ratios=(1.0,), stride=(8, 4))
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, AnchorGenerator)
    np.testing.assert_allclose(clone(tf.zeros([1, 2, 2, 1])), layer(tf.zeros([1, 2, 2, 1])))
    assert layer.compute_output_shape((None, 4, 5, 8)) == (4 * 5, 4)
