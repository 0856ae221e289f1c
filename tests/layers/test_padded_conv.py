"""PaddedConv: ZeroPadding2D + 'valid' convolution, computed as one 'same' convolution where equal."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.layers.padded_conv import PaddedConv, same_padding


@pytest.mark.parametrize("size", [5, 6, 7, 8, 75, 160])
@pytest.mark.parametrize("kernel,stride,dilation", [(3, 2, 1), (5, 2, 1), (7, 2, 1), (3, 1, 1), (1, 2, 1), (3, 1, 2)])
def test_same_padding_is_what_tensorflow_pads(size, kernel, stride, dilation):
    # TensorFlow's "SAME" equals an explicit tf.pad of (before, after) + "VALID": the reference.
    x = tf.constant(np.random.default_rng(size).normal(size=(1, size, 3, 1)).astype("float32"))
    w = tf.constant(np.random.default_rng(kernel).normal(size=(kernel, 1, 1, 1)).astype("float32"))
    before, after = same_padding(size, kernel, stride, dilation)
    same = tf.nn.conv2d(x, w, [1, stride, 1, 1], "SAME", dilations=[1, dilation, 1, 1])
    padded = tf.nn.conv2d(tf.pad(x, [[0, 0], [before, after], [0, 0], [0, 0]]), w, [1, stride, 1, 1], "VALID",
                          dilations=[1, dilation, 1, 1])
    np.testing.assert_allclose(same.numpy(), padded.numpy(), rtol=1e-5, atol=1e-5)


def test_same_padding_by_hand():
    assert same_padding(160, 3, 2) == (0, 1)  # even size, k=3, s=2: MobileNetV2's correct_pad
    assert same_padding(75, 3, 2) == (1, 1)  # odd size: one on each side
    assert same_padding(80, 5, 2) == (1, 2)  # MobileNetV3's 5x5 stride-2
    assert same_padding(75, 7, 2) == (3, 3)  # ResNet's conv1 on an odd size
    assert same_padding(76, 7, 2) == (2, 3)
    assert same_padding(8, 1, 2) == (0, 0)


def _pair(depthwise, padding, kernel=3, strides=2):
    keras.utils.set_random_seed(1)
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(kernel, strides, padding="valid", depth_multiplier=2, activation="relu6")
    else:
        conv = keras.layers.Conv2D(5, kernel, strides, padding="valid", activation="relu")
    conv.build((None, None, None, 4))
    conv.bias.assign(np.linspace(-1, 1, conv.bias.shape[0]).astype("float32"))
    reference = keras.Sequential([keras.Input((None, None, 4)), keras.layers.ZeroPadding2D(padding), conv])
    return conv, reference


@pytest.mark.parametrize("depthwise", [True, False])
@pytest.mark.parametrize("hw", [(16, 12), (15, 12), (15, 13), (3, 2)])
@pytest.mark.parametrize("padding", [((0, 1), (0, 1)), ((1, 1), (1, 1)), ((1, 2), (0, 1))])
def test_padded_conv_equals_the_padding_and_the_valid_conv(depthwise, hw, padding):
    conv, reference = _pair(depthwise, padding)
    layer = PaddedConv(conv, padding)
    x = tf.constant(np.random.default_rng(hw[0]).normal(size=(2,) + hw + (4,)).astype("float32"))
    expected = reference(x)
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # Unknown height and width at trace time: the padding and the 'valid' convolution.
    fn = tf.function(layer.__call__, input_signature=[tf.TensorSpec([None, None, None, 4])])
    np.testing.assert_allclose(fn(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert tuple(layer.compute_output_shape((2,) + hw + (4,))) == tuple(expected.shape)


def test_the_same_convolution_runs_where_equal_and_only_there():
    conv, _ = _pair(True, ((0, 1), (0, 1)))
    layer = PaddedConv(conv, ((0, 1), (0, 1)))
    assert layer.is_same(160, 80) and not layer.is_same(75, 80) and not layer.is_same(None, 80)

    def ops_of(shape):
        graph = tf.function(layer.__call__).get_concrete_function(tf.TensorSpec(shape)).graph
        return {op.type for op in graph.get_operations()}

    assert "Pad" not in ops_of([1, 16, 16, 4])
    assert "Pad" in ops_of([1, 15, 16, 4]) and "Pad" in ops_of([1, None, None, 4])


def test_padded_conv_rejects_a_same_conv():
    with pytest.raises(ValueError, match="padding='valid'"):
        PaddedConv(keras.layers.Conv2D(2, 3, padding="same"), ((1, 1), (1, 1)))


def test_padded_conv_round_trips_through_its_config():
    conv, _ = _pair(True, ((0, 1), (0, 1)))
    layer = PaddedConv(conv, ((0, 1), (0, 1)), name="block_1_depthwise")
    x = tf.constant(np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32"))
    expected = layer(x)
    clone = PaddedConv.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    assert clone.name == "block_1_depthwise" and clone.padding == ((0, 1), (0, 1))
    np.testing.assert_allclose(clone(x).numpy(), expected.numpy(), rtol=1e-6)
    model = keras.Sequential([keras.Input((8, 8, 4)), layer])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored(x).numpy(), expected.numpy(), rtol=1e-6)
