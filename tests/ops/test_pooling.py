"""Adaptive average pooling against hand-computed torch.nn.AdaptiveAvgPool2d bins."""

import numpy as np
import tensorflow as tf

from keras_det.ops.pooling import adaptive_average_pool, adaptive_pool_matrix


def test_bins_match_torch_adaptive_avg_pool():
    # 5 -> 3: bins [0, 2), [1, 4), [3, 5) (floor(i*5/3) .. ceil((i+1)*5/3)).
    np.testing.assert_allclose(adaptive_pool_matrix(5, 3).numpy(),
                               [[0.5, 0.5, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 0.5, 0.5]])
    # 2 -> 3 (a smaller input is repeated): [0, 1), [0, 2), [1, 2).
    np.testing.assert_allclose(adaptive_pool_matrix(2, 3).numpy(), [[1, 0], [0.5, 0.5], [0, 1]])
    # Divisible sizes are plain average pooling.
    np.testing.assert_allclose(adaptive_pool_matrix(4, 2).numpy(), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_adaptive_average_pool_values_shapes_and_gradient():
    x = np.arange(2 * 5 * 4 * 3, dtype=np.float32).reshape(2, 5, 4, 3)
    out = adaptive_average_pool(x, (3, 2)).numpy()
    assert out.shape == (2, 3, 2, 3)
    # Cell (1, 0): rows 1..3, cols 0..1 (4 -> 2 bins: [0, 2), [2, 4)).
    np.testing.assert_allclose(out[1, 1, 0], x[1, 1:4, 0:2].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(out[0, 2, 1], x[0, 3:5, 2:4].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(adaptive_average_pool(x, 1).numpy()[:, 0, 0], x.mean(axis=(1, 2)), rtol=1e-6)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.reduce_sum(adaptive_average_pool(t, 3))
    grad = tape.gradient(y, t).numpy()
    assert np.all(grad > 0)  # every input cell is in some bin


def test_adaptive_average_pool_traces_with_dynamic_sizes():
    fn = tf.function(lambda t: adaptive_average_pool(t, 7), input_signature=[tf.TensorSpec([None, None, None, 2])])
    assert fn(tf.ones([1, 3, 9, 2])).shape == (1, 7, 7, 2)
    np.testing.assert_allclose(fn(tf.ones([2, 11, 4, 2])).numpy(), 1.0, rtol=1e-6)
