"""Adaptive average pooling: any ``H × W`` map to a fixed grid.

The bins are those of ``torch.nn.AdaptiveAvgPool2d`` (and Caffe's
adaptive pooling): output cell ``i`` of ``n`` averages input rows
``floor(i * H / n) .. ceil((i + 1) * H / n) - 1``, so bins may overlap and a
smaller input is repeated. Written as two averaging matrices
(``out = P_h · x · P_wᵀ``), it is differentiable and traces with dynamic
``H, W`` (``tf.image.resize(method="area")`` has no gradient).
"""

import tensorflow as tf


def adaptive_pool_matrix(size, bins):
    """``[bins, size]`` row-stochastic matrix averaging each adaptive bin.

    Args:
        size: input length (int or scalar int tensor).
        bins: output length (int).

    Returns:
        float32 ``[bins, size]``.
    """
    size_f = tf.cast(size, tf.float32)
    i = tf.range(bins, dtype=tf.float32)
    start = tf.floor(i * size_f / bins)
    end = tf.math.ceil((i + 1.0) * size_f / bins)
    idx = tf.range(tf.cast(size, tf.int32), dtype=tf.float32)
    inside = tf.cast((idx[None, :] >= start[:, None]) & (idx[None, :] < end[:, None]), tf.float32)
    return inside / tf.reduce_sum(inside, axis=1, keepdims=True)


def adaptive_average_pool(features, output_size):
    """Adaptive average pooling of ``[B, H, W, C]`` maps to ``[B, oh, ow, C]``.

    Args:
        features: float ``[B, H, W, C]``.
        output_size: ``(oh, ow)`` or an int for a square grid.

    Returns:
        ``[B, oh, ow, C]`` in the dtype of ``features``.
    """
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    features = tf.convert_to_tensor(features)
    shape = tf.shape(features)
    rows = tf.cast(adaptive_pool_matrix(shape[1], int(oh)), features.dtype)
    cols = tf.cast(adaptive_pool_matrix(shape[2], int(ow)), features.dtype)
    return tf.einsum("ih,bhwc,jw->bijc", rows, features, cols)
