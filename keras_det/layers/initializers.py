"""Kernel initializers: ``BilinearUpsampling`` (FCN's transposed convolutions start as bilinear interpolation)."""

import keras
import numpy as np
import tensorflow as tf


def bilinear_kernel(size, channels):
    """``[size, size, channels, channels]`` kernel of a bilinear-interpolation
    transposed convolution (channel ``i`` → channel ``i``)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size, dtype=np.float64)
    filt = 1 - np.abs(og - center) / factor
    kernel2d = np.outer(filt, filt)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = kernel2d
    return kernel


@keras.saving.register_keras_serializable(package="keras_det")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initializer of a ``Conv2DTranspose`` kernel ``[k, k, C, C]`` to bilinear upsampling."""

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[0] != shape[1] or shape[2] != shape[3]:
            raise ValueError(f"BilinearUpsampling needs a [k, k, C, C] kernel shape, got {shape}.")
        return tf.constant(bilinear_kernel(int(shape[0]), int(shape[2])), dtype=dtype or "float32")

    def get_config(self):
        return {}
