import keras
import numpy as np

from keras_det.layers.initializers import BilinearUpsampling, bilinear_kernel


def test_bilinear_upsampling_kernel():
    up = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", use_bias=False, kernel_initializer=BilinearUpsampling())
    ramp = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1) * np.ones((1, 8, 1, 1), np.float32)
    out = up(ramp).numpy()[0, 4, :, 0]
    # Interior of a linear ramp stays linear after bilinear upsampling (half steps).
    np.testing.assert_allclose(np.diff(out[2:-2]), 0.5, atol=1e-5)
    assert bilinear_kernel(16, 2)[:, :, 0, 1].sum() == 0


def test_bilinear_upsampling_serializes_under_its_registered_name():
    config = keras.saving.serialize_keras_object(BilinearUpsampling())
    assert config["registered_name"] == "keras_det>BilinearUpsampling"
    config["module"] = "keras_det.models.segmentation"  # files saved before the move
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, BilinearUpsampling)
    np.testing.assert_array_equal(clone((4, 4, 2, 2)).numpy(), bilinear_kernel(4, 2))
