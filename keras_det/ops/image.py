"""Image geometry shared by training and serving: one aspect-preserving resize.

`keras_det.data.augment.resize_pad` (training, evaluation, ``keras-det data``)
and the exported serving graph (`keras_det.export`, `keras_det.inference`) both
call `resize_pad` here, so a model sees the same pixels and box mapping when it
trains and when it serves.
"""

import tensorflow as tf


def fit_size(hw, size):
    """The size an image of ``hw`` takes when fitted into ``size``, aspect kept.

    ``s = min(size_h / H, size_w / W)``; the result is
    ``(clip(round(s H), 1, size_h), clip(round(s W), 1, size_w))``.

    Args:
        hw: int ``[2]`` tensor ``(H, W)`` of the original image (``0`` is
            treated as ``1``).
        size: ``(height, width)`` Python ints of the target.

    Returns:
        int32 ``[2]`` tensor ``(new_h, new_w)``.
    """
    hw = tf.maximum(tf.cast(hw, tf.float32), 1.0)
    target = tf.constant(size, tf.float32)
    scale = tf.reduce_min(target / hw)
    new_hw = tf.cast(tf.round(hw * scale), tf.int32)
    return tf.clip_by_value(new_hw, 1, tf.constant(size, tf.int32))


def resize_pad(image, size, pad_value=0.0, method="bilinear"):
    """Aspect-preserving resize of one image into ``size``, padded at the bottom / right.

    Args:
        image: ``[H, W, C]`` tensor of any numeric dtype.
        size: ``(height, width)`` Python ints.
        pad_value: value of the padding.
        method: ``tf.image.resize`` method.

    Returns:
        ``(padded, factors)``: float32 ``[height, width, C]`` and float32 ``[2]``
        ``(new_h / H, new_w / W)``, the exact per-axis factors that map
        absolute ``yxyx`` boxes of the original onto the padded image
        (multiply by ``(fy, fx, fy, fx)``) and back (divide).
    """
    height, width = int(size[0]), int(size[1])
    hw = tf.shape(image)[:2]
    new_hw = fit_size(hw, (height, width))
    resized = tf.image.resize(tf.cast(image, tf.float32), new_hw, method=method)
    pad = [[0, height - new_hw[0]], [0, width - new_hw[1]], [0, 0]]
    padded = tf.pad(resized - pad_value, pad) + pad_value
    padded.set_shape([height, width, image.shape[-1]])
    factors = tf.cast(new_hw, tf.float32) / tf.maximum(tf.cast(hw, tf.float32), 1.0)
    return padded, factors
