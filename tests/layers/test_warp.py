import numpy as np
import tensorflow as tf

from keras_det.layers.warp import WarpRegions


def test_warp_regions():
    image = np.zeros((1, 20, 20, 3), np.float32)
    image[0, 5:15, 5:15] = 200.0
    warp = WarpRegions(8, 0)
    out = warp(image, tf.constant([[5.0, 5.0, 15.0, 15.0]]), tf.constant([0])).numpy()
    assert out.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(out, 200.0, atol=1e-3)
    # Context beyond the image border is filled with the image mean.
    padded = WarpRegions(8, 2)(image, tf.constant([[0.0, 0.0, 20.0, 20.0]]), tf.constant([0])).numpy()
    np.testing.assert_allclose(padded[0, 0, 0], image.mean(axis=(1, 2))[0], atol=1e-3)
    assert WarpRegions.from_config(warp.get_config()).get_config() == warp.get_config()
