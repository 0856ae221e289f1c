import keras
import numpy as np
import pytest

from keras_det.backbones import BACKBONES, build_backbone
from keras_det.layers.preprocessing import ImagePreprocessing


@pytest.mark.parametrize("name", BACKBONES)
def test_taps_have_their_strides(name):
    model = build_backbone(name, weights=None, input_shape=(64, 64, 3), taps=("C3", "C4", "C5"))
    out = model(np.zeros((1, 64, 64, 3), np.float32))
    assert {k: tuple(v.shape[1:3]) for k, v in out.items()} == {"C3": (8, 8), "C4": (4, 4), "C5": (2, 2)}


def test_vgg16_c4_is_conv5_3_and_dynamic_size():
    model = build_backbone("vgg16", weights=None, input_shape=(None, None, 3), taps=("C4",))
    inner = model.layers[-1]
    assert inner.output["C4"] is inner.get_layer("block5_conv3").output
    out = model(np.zeros((1, 96, 128, 3), np.float32))
    assert out["C4"].shape == (1, 6, 8, 512)


def test_preprocessing_matches_keras_applications():
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(
        ImagePreprocessing("caffe")(x), keras.applications.vgg16.preprocess_input(x.copy()), rtol=1e-5, atol=1e-4
    )
    np.testing.assert_allclose(
        ImagePreprocessing("tf")(x), keras.applications.mobilenet_v2.preprocess_input(x.copy()), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        ImagePreprocessing("torch")(x),
        keras.applications.imagenet_utils.preprocess_input(x.copy(), mode="torch"),
        rtol=1e-5,
        atol=1e-5,
    )


def test_resnet50_taps_are_the_stage_outputs():
    inner = build_backbone("resnet50", input_shape=(None, None, 3)).layers[-1]
    for tap, layer in (("C3", "conv3_block4_out"), ("C4", "conv4_block6_out"), ("C5", "conv5_block3_out")):
        assert inner.output[tap] is inner.get_layer(layer).output


def test_local_weights_file_round_trip(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = str(tmp_path / "mnv2.weights.h5")
    source.save_weights(path)
    model = build_backbone("mobilenet_v2", weights=path, input_shape=(64, 64, 3), taps=("C5",))
    inner = model.layers[-1]
    np.testing.assert_array_equal(inner.get_layer("Conv1").kernel.numpy(), source.get_layer("Conv1").kernel.numpy())


def test_bad_weights_and_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("vgg16", weights=str(tmp_path / "missing.h5"))
    other = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = str(tmp_path / "other.weights.h5")
    other.save_weights(path)
    with pytest.raises(ValueError, match="does not fit 'efficientnet_b0'"):
        build_backbone("efficientnet_b0", weights=path, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(ValueError, match="`taps`"):
        build_backbone("vgg16", taps=("C7",))


def test_custom_keras_model_backbone():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s4")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="s8")(x)
    model = build_backbone(keras.Model(inputs, x), taps=("C2", "C3"))
    out = model(np.zeros((1, 32, 32, 3), np.float32))
    assert out["C2"].shape == (1, 8, 8, 8) and out["C3"].shape == (1, 4, 4, 8)
