"""RoIPool (Fast R-CNN) by a range-max table.

``roi_pool`` takes NHWC ``features`` ``[B, H, W, C]`` and ``rois`` ``[B, R, 4]``
in absolute ``yxyx`` input-image pixels (the keras_det canonical format) and
return ``[B, R, out_h, out_w, C]``. Values are those of
``torchvision.ops.roi_pool`` (CPU kernel) called on the same
data in NCHW with rois ``[K, 5] = (batch_index, x1, y1, x2, y2)`` and the same
``spatial_scale``; the tests check this to
1e-4 on fixtures made with torchvision.

Semantics, per RoI (torchvision's)::

    RoIPool    start = round(y1 * scale) (half away from zero),
               roi_h = max(round(y2 * scale) - start + 1, 1), bin_h = roi_h / out_h,
               rows [floor(ph * bin_h), ceil((ph + 1) * bin_h)) + start clipped to
               [0, H]; bin = max over its rectangle, 0 if the rectangle is empty.

The same on the x axis. Gradients flow to ``features`` (not to ``rois``, as in
torchvision). Padding rows (all-zero boxes) give finite values.

Implementation notes:

* RoIPool takes an exact max over arbitrary rectangles with a 2-D sparse table
  (range-max table) of the feature map: ``(floor(log2 h) + 1) * (floor(log2 w)
  + 1)`` max-reduced copies of the map for the largest bin ``h x w`` present
  (at most ``H x W``), then four gathers per bin. Memory is that many times
  the feature map (9 copies when no bin exceeds 7 x 7 feature pixels).
* Bin edges are computed in torchvision's float32 operation order
  (``keras_det.ops._roi_common``).
"""

import tensorflow as tf

from keras_det.ops._roi_common import check_inputs, dim, div, output_shape, pair, times

__all__ = ["roi_pool"]


def _c_round(x):
    """C ``round``: halves away from zero (``tf.round`` rounds half to even)."""
    t = tf.where(x < 0, tf.math.ceil(x), tf.math.floor(x))
    frac = x - t  # exact in float
    return tf.where(tf.abs(frac) >= 0.5, t + tf.sign(x), t)


def _floor_log2(n, max_bits=30):
    """floor(log2(n)) for int32 ``n >= 1``, exact (no float log)."""
    powers = tf.bitwise.left_shift(tf.ones([max_bits], tf.int32), tf.range(1, max_bits + 1))
    return tf.reduce_sum(tf.cast(n[..., None] >= powers, tf.int32), axis=-1)


def _range_max_levels(x, axis, num_levels):
    """Stack of ``T[k][i] = max(x[i : i + 2**k])`` along ``axis`` (edge-clamped).

    Args:
        x: tensor.
        axis: non-negative axis of ``x``.
        num_levels: int32 scalar tensor, ``1 <= num_levels <= floor(log2(n)) + 1``.

    Returns:
        ``[num_levels] + x.shape``.
    """
    n = tf.shape(x)[axis]
    idx = tf.range(n)

    def step(prev, k):
        shift = tf.bitwise.left_shift(tf.constant(1), k - 1)
        shifted = tf.gather(prev, tf.minimum(idx + shift, n - 1), axis=axis)
        return tf.maximum(prev, shifted)

    array = tf.TensorArray(x.dtype, size=num_levels, element_shape=x.shape)
    array = array.write(0, x)

    def body(k, prev, array):
        cur = step(prev, k)
        return k + 1, cur, array.write(k, cur)

    _, _, array = tf.while_loop(
        lambda k, prev, array: k < num_levels,
        body,
        (tf.constant(1), x, array),
    )
    return array.stack()


def _pool_bounds(lo, hi, scale, out_size, length):
    """torchvision roi_pool bin bounds along one axis → int32 (start, end) ``[B, R, P]``."""
    scale = tf.constant(scale, tf.float32)
    start = _c_round(lo * scale)
    end = _c_round(hi * scale)
    size = tf.maximum(end - start + 1.0, 1.0)
    bin_size = div(size, out_size)
    p = tf.range(out_size, dtype=tf.float64)
    lf = tf.cast(length, tf.float32)
    b0 = tf.floor(times(bin_size, p)) + start[..., None]
    b1 = tf.math.ceil(times(bin_size, p + 1.0)) + start[..., None]
    b0 = tf.clip_by_value(b0, 0.0, lf)
    b1 = tf.clip_by_value(b1, 0.0, lf)
    return tf.cast(b0, tf.int32), tf.cast(b1, tf.int32)


def roi_pool(features, rois, output_size=(7, 7), spatial_scale=1.0 / 16):
    """RoIPool (Fast R-CNN) with the semantics of ``torchvision.ops.roi_pool``.

    Box corners are rounded to feature pixels (half away from zero) and each
    bin is the max over an integer rectangle (0 for a rectangle that is empty
    after clipping to the map).

    Args:
        features: float ``[B, H, W, C]`` (NHWC).
        rois: float ``[B, R, 4]`` absolute ``yxyx`` input-image pixels.
        output_size: ``(out_h, out_w)`` or an int.
        spatial_scale: feature-map pixels per image pixel (1/stride).

    Returns:
        ``[B, R, out_h, out_w, C]`` in the dtype of ``features``.

    The max over a rectangle uses a range-max table with
    ``(floor(log2 h) + 1) * (floor(log2 w) + 1)`` copies of the feature map,
    where ``h x w`` is the largest bin (at most ``H x W``), built with a
    ``tf.while_loop``.
    """
    out_h, out_w = pair(output_size)
    features, rois = check_inputs(features, rois)
    height = dim(features, 1)
    width = dim(features, 2)
    y1, x1, y2, x2 = tf.unstack(rois, 4, axis=-1)
    h0, h1 = _pool_bounds(y1, y2, spatial_scale, out_h, height)  # [B, R, oh]
    w0, w1 = _pool_bounds(x1, x2, spatial_scale, out_w, width)  # [B, R, ow]
    h0, h1 = h0[..., :, None], h1[..., :, None]
    w0, w1 = w0[..., None, :], w1[..., None, :]
    empty = (h1 <= h0) | (w1 <= w0)  # [B, R, oh, ow]
    len_h = tf.maximum(h1 - h0, 1)
    len_w = tf.maximum(w1 - w0, 1)
    kh = _floor_log2(len_h)
    kw = _floor_log2(len_w)
    hmax = tf.shape(features)[1] - 1
    wmax = tf.shape(features)[2] - 1
    top = tf.minimum(h0, hmax)
    bottom = tf.clip_by_value(h1 - tf.bitwise.left_shift(tf.ones_like(kh), kh), 0, hmax)
    left = tf.minimum(w0, wmax)
    right = tf.clip_by_value(w1 - tf.bitwise.left_shift(tf.ones_like(kw), kw), 0, wmax)

    # table[kw, kh, b, h, w, c] = max of features[b, h:h+2^kh, w:w+2^kw, c],
    # built only up to the largest bin actually present (data-dependent, so a
    # tf.while_loop): typically 3 x 3 levels instead of log2(H) x log2(W).
    levels_h = tf.reduce_max(tf.concat([tf.reshape(kh, [-1]), [0]], 0)) + 1
    levels_w = tf.reduce_max(tf.concat([tf.reshape(kw, [-1]), [0]], 0)) + 1
    table = _range_max_levels(features, 1, levels_h)  # [KH, B, H, W, C]
    table = _range_max_levels(table, 3, levels_w)  # [KW, KH, B, H, W, C]

    shape = tf.shape(empty)
    b = tf.broadcast_to(tf.range(shape[0])[:, None, None, None], shape)
    kh = tf.broadcast_to(kh, shape)
    kw = tf.broadcast_to(kw, shape)

    def corner(rows, cols):
        rows = tf.broadcast_to(rows, shape)
        cols = tf.broadcast_to(cols, shape)
        return tf.gather_nd(table, tf.stack([kw, kh, b, rows, cols], axis=-1))

    out = tf.maximum(
        tf.maximum(corner(top, left), corner(top, right)),
        tf.maximum(corner(bottom, left), corner(bottom, right)),
    )
    out = tf.where(empty[..., None], tf.zeros_like(out), out)
    return tf.reshape(out, output_shape(features, rois, out_h, out_w))
