"""Image geometry shared by training and serving: one aspect-preserving resize.

`keras_det.data.augment.resize_pad` (training, evaluation, ``keras-det data``)
and the exported serving graph (`keras_det.export`, `keras_det.inference`) both
call `resize_pad` here, so a model sees the same pixels and box mapping when it
trains and when it serves.
"""

import numbers

import tensorflow as tf


def image_hw(image_size, name="image_size", one_value_square=False):
    """``(height, width)`` Python ints from one positive int ``S`` (square) or two.

    The one parser of an image size for the whole package: the training
    pipeline (`keras_det.data.batch`, `Resize`), `keras_det.data.describe`,
    a model's remembered size (`keras_det.models.config.remember`), the
    serving export and the command line all take a size through here, so they
    accept and reject the same values.

    Args:
        image_size: an int ``S`` or a pair ``(H, W)`` of ints, each ``>= 1``
            (NumPy integers count; bools and floats do not).
        name: how the error message names the value (``"--image-size"``).
        one_value_square: also take a one-item sequence ``[S]`` as ``S``
            (a command-line flag with ``nargs="+"``).

    Returns:
        ``(height, width)``, two Python ints.

    Raises:
        ValueError: naming ``name`` and the value, for anything else.
    """

    def positive(s):
        return isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) >= 1

    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    try:
        size = tuple(size)
    except TypeError:
        size = None
    if size is not None and len(size) == 1 and one_value_square:
        size = size * 2
    if size is None or len(size) != 2 or not all(positive(s) for s in size):
        label = name if name.startswith("-") else f"`{name}`"
        raise ValueError(f"{label} must be one positive integer S (square) or two, height and width; got {image_size!r}.")
    return int(size[0]), int(size[1])


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
