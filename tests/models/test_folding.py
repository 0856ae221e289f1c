"""BatchNorm folding: the folded arithmetic by hand, every backbone and every detector against the unfolded model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.backbones import build_backbone
from keras_det.layers.padded_conv import PaddedConv
from keras_det.layers.yolo_head import ConvBNAct
from keras_det.models.folding import fold_batch_norms, folded_weights, inference_copy

MICRO = [n for n in presets.names() if n.endswith("_micro")]


def _randomize_batch_norms(model, seed=0):
    """Moving statistics, gamma and beta far from their initial values (else folding is nearly the identity)."""
    rng = np.random.default_rng(seed)
    count = 0
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, n).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.3, n).astype("float32"))
            count += 1
    return count


def _layers(model):
    return model._flatten_layers(include_self=False)


def _batch_norm_channels(model):
    return sum(layer.moving_mean.shape[0] for layer in model._flatten_layers()
               if isinstance(layer, keras.layers.BatchNormalization))


def _batch_norms(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers())


@pytest.mark.parametrize("depthwise", [False, True])
def test_folded_weights_by_hand(depthwise):
    # One 1x1 conv on 2 input channels; depthwise multiplier 2 -> output channel c * 2 + j.
    conv = (keras.layers.DepthwiseConv2D(1, depth_multiplier=2, use_bias=True) if depthwise
            else keras.layers.Conv2D(4, 1, use_bias=True))
    bn = keras.layers.BatchNormalization(epsilon=0.0)
    bn(conv(tf.zeros((1, 1, 1, 2))))
    kernel = np.arange(1.0, 5.0 if depthwise else 9.0, dtype="float32").reshape(conv.kernel.shape)
    conv.kernel.assign(kernel)
    conv.bias.assign([1.0, 2.0, 3.0, 4.0])
    bn.moving_mean.assign([1.0, 1.0, 2.0, 0.0])
    bn.moving_variance.assign([4.0, 1.0, 0.25, 16.0])  # sqrt: 2, 1, 0.5, 4
    bn.gamma.assign([2.0, 1.0, 1.0, 2.0])  # scale s = gamma / sqrt(var): 1, 1, 2, 0.5
    bn.beta.assign([0.0, 1.0, -1.0, 0.5])
    new_kernel, new_bias = folded_weights(conv, bn)
    s = np.array([1.0, 1.0, 2.0, 0.5])
    expected_kernel = kernel * (s.reshape(2, 2) if depthwise else s)
    np.testing.assert_allclose(new_kernel, expected_kernel)
    # (b - mean) * s + beta = (0, 1, 1, 4) * s + beta
    np.testing.assert_allclose(new_bias, [0.0, 2.0, 1.0, 2.5])
    # And the folded conv computes conv -> bn on a real input.
    x = tf.constant([[[[0.5, -2.0]]]])
    reference = bn(conv(x), training=False)
    if depthwise:
        folded = tf.nn.depthwise_conv2d(x, new_kernel, [1, 1, 1, 1], "VALID") + new_bias
    else:
        folded = tf.nn.conv2d(x, new_kernel, 1, "VALID") + new_bias
    np.testing.assert_allclose(folded.numpy(), reference.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["tiny", "mobilenet_v2", "mobilenet_v3_large", "resnet50", "efficientnet_b0"])
def test_every_backbone_folds_every_batch_norm_and_computes_the_same(name):
    keras.utils.set_random_seed(0)  # the conv kernels too: the rounding bound is checked on one fixed draw, not any
    backbone = build_backbone(name, None, (None, None, 3), taps=("C3", "C4", "C5"))
    total = _randomize_batch_norms(backbone)
    folded, count = fold_batch_norms(backbone)
    assert count == total > 0
    assert _batch_norms(folded) == 0
    # Every ZeroPadding2D before a 'valid' convolution is merged into it (MobileNetV2 / V3: before each
    # stride-2 depthwise conv; ResNet: conv1_pad); any other stays (ResNet's pool1_pad, before a MaxPool).
    pads = [layer for layer in _layers(backbone) if isinstance(layer, keras.layers.ZeroPadding2D)]
    merged = [layer for layer in _layers(folded) if isinstance(layer, PaddedConv)]
    assert len(merged) == {"tiny": 0, "mobilenet_v2": 4, "mobilenet_v3_large": 4, "resnet50": 1,
                           "efficientnet_b0": 5}[name]
    inner = {id(layer.pad) for layer in merged}
    assert len(pads) - len(merged) == len([layer for layer in _layers(folded)
                                           if isinstance(layer, keras.layers.ZeroPadding2D) and id(layer) not in inner])
    # Even sizes (the merged padding runs as a 'same' convolution), odd ones (as the padding and the
    # 'valid' convolution) and sizes unknown when traced.
    for shape in ((2, 96, 64, 3), (1, 75, 51, 3)):
        x = tf.constant(np.random.default_rng(1).uniform(0, 255, shape).astype("float32"))
        expected, got = backbone(x, training=False), folded(x, training=False)
        traced = tf.function(lambda t: folded(t, training=False), input_signature=[tf.TensorSpec([None, None, None, 3])])(x)
        assert set(got) == set(expected) == set(traced)
        for tap in expected:
            scale = float(tf.reduce_max(tf.abs(expected[tap])))
            for out in (got, traced):  # float32 rounding through 50+ layers
                np.testing.assert_allclose(out[tap].numpy(), expected[tap].numpy(), atol=5e-5 * scale, err_msg=f"{tap} {shape}")
    # The original is untouched (the training model keeps its BatchNormalization).
    assert _batch_norms(backbone) == total


def test_a_batch_norm_whose_conv_has_another_reader_is_left_alone():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="shared_conv")(inputs)
    normed = keras.layers.BatchNormalization(name="bn_after_shared")(conv)
    side = keras.layers.Conv2D(4, 1, use_bias=False, name="plain")(inputs)
    side = keras.layers.BatchNormalization(name="bn_after_plain")(side)
    outputs = keras.layers.Add()([normed, conv, side])  # `conv` is read twice: its BN cannot fold
    model = keras.Model(inputs, outputs)
    _randomize_batch_norms(model)
    folded, count = fold_batch_norms(model)
    assert count == 1
    assert [layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)] == ["bn_after_shared"]
    assert folded.get_layer("plain").use_bias
    x = tf.constant(np.random.default_rng(2).normal(size=(1, 8, 8, 3)).astype("float32"))
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), atol=1e-5)


def _size(model):
    return tuple(getattr(model, "image_size", None) or (64, 64))


@pytest.mark.parametrize("name", MICRO)
def test_inference_copy_of_every_detector_predicts_what_the_model_predicts(name):
    model = presets.build(name, 3)
    size = _size(model)
    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(0, 255, (2,) + size + (3,)).astype("float32"))
    if name in ("fast_rcnn_micro", "rcnn_micro"):  # proposal detectors take xyxy proposals with the images
        corners = np.sort(rng.uniform(0, size[0], (2, 8, 2, 2)), axis=2)
        x = {"images": x, "proposals": tf.constant(corners.reshape(2, 8, 4).astype("float32"))}  # (x1, y1), (x2, y2)
    model(x, training=False)
    assert _randomize_batch_norms(model) > 0  # every BatchNorm: backbone, SSD extras, YOLO neck and heads
    copy = inference_copy(model, x)
    assert copy is not model and type(copy) is type(model)
    assert _batch_norms(copy.backbone) == 0 and _batch_norms(model.backbone) > 0
    if "yolo" in name:  # YOLO's neck / heads (ConvBNAct) fold too
        blocks = [layer for layer in copy._flatten_layers() if isinstance(layer, ConvBNAct)]
        assert blocks and all(block.bn is None and block.conv.use_bias for block in blocks)
    # Each folded BatchNorm of C channels takes 4 C variables away and adds C conv biases (these convs had
    # none): anything else would be a stale or missing variable in what is exported.
    folded_channels = _batch_norm_channels(model) - _batch_norm_channels(copy)
    assert folded_channels > 0
    assert model.count_params() - copy.count_params() == 3 * folded_channels
    expected, got = model(x, training=False), copy(x, training=False)
    np.testing.assert_array_equal(got["num_detections"].numpy(), expected["num_detections"].numpy())
    np.testing.assert_array_equal(got["labels"].numpy(), expected["labels"].numpy())
    np.testing.assert_allclose(got["scores"].numpy(), expected["scores"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["boxes"].numpy(), expected["boxes"].numpy(), atol=1e-3 * max(size))


def test_a_model_without_batch_norm_is_served_as_it_is():
    model = presets.build("faster_rcnn_micro", 3, backbone="vgg16")
    size = _size(model)
    x = tf.zeros((1,) + size + (3,))
    model(x, training=False)
    assert inference_copy(model, x) is model
