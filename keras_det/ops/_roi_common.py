"""Helpers shared by ``roi_align.py`` and ``roi_pool.py``.

Argument checks, the ``[B, R, out_h, out_w, C]`` output shape, and float32
arithmetic done via float64 (``div``, ``times``) so that Grappler (which
rewrites ``x / c`` as ``x * (1 / c)`` inside a ``tf.function``) cannot move a
floor / ceil decision: bin edges, grids and sample positions are computed in
torchvision's float32 operation order.
"""

import tensorflow as tf


def pair(output_size, name="output_size"):
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    output_size = tuple(int(s) for s in output_size)
    if len(output_size) != 2 or min(output_size) < 1:
        raise ValueError(
            f"`{name}` must be a positive int or (height, width), got {output_size!r}."
        )
    return output_size


def check_inputs(features, rois):
    features = tf.convert_to_tensor(features)
    if not features.dtype.is_floating:
        features = tf.cast(features, tf.float32)
    rois = tf.stop_gradient(tf.cast(tf.convert_to_tensor(rois), tf.float32))
    if features.shape.rank is not None and features.shape.rank != 4:
        raise ValueError(f"`features` must be [B, H, W, C], got shape {features.shape}.")
    if rois.shape.rank is not None and (rois.shape.rank != 3 or rois.shape[-1] not in (None, 4)):
        raise ValueError(f"`rois` must be [B, R, 4] (yxyx), got shape {rois.shape}.")
    return features, rois


def dim(x, axis):
    """Static size of an axis if known, else the dynamic one."""
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def output_shape(features, rois, out_h, out_w):
    return [dim(rois, 0), dim(rois, 1), out_h, out_w, dim(features, 3)]


def div(x, divisor):
    """float32 ``x / divisor`` correctly rounded, also inside a ``tf.function``.

    Grappler's constant folding turns a division by a constant into a
    multiplication by its float32 reciprocal (``6 / 7.0`` then gives
    0.8571429 instead of 0.85714287), which moves torchvision's floor / ceil
    decisions. Dividing in float64 (even if rewritten the same way, its
    error is ~1e-16) and rounding once to float32 gives the correctly
    rounded float32 quotient for the small divisors used here.
    """
    divisor = tf.cast(divisor, tf.float64)
    return tf.cast(tf.cast(x, tf.float64) / divisor, tf.float32)


def times(x, multipliers):
    """float32 ``x[..., None] * multipliers`` rounded exactly as in float32.

    ``multipliers`` are small integers or half-integers, so the float64
    product is exact and casting it back is the float32 product. Going through
    float64 stops Grappler's constant folding from re-associating
    ``p * (size / n)`` into ``size * (p / n)``, which changes the last bit and
    so the floor / ceil of RoIPool's bin edges (and exact-boundary samples).
    """
    return tf.cast(tf.cast(x, tf.float64)[..., None] * tf.cast(multipliers, tf.float64), tf.float32)
