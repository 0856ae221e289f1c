"""Batching to the dense, padded contract and a ready-made input pipeline.

A batch is ``{"images": float32 [B, H, W, 3], "bounding_boxes": {"boxes":
float32 [B, M, 4], "labels": int32 [B, M], ...}, "image_id": int64 [B],
"file_name": string [B], "masks": [B, M, H, W], "keypoints": [B, M, K, 3]}``. Padding rows
have label ``-1`` and box ``[0, 0, 0, 0]``; other per-box fields (``difficult``, ``is_crowd``)
pad with ``False``, masks and keypoints with 0.
"""

import tensorflow as tf

from keras_det.data.augment import resize_pad
from keras_det.ops import boxes as box_ops
from keras_det.ops.image import image_hw


# Per-box element keys outside "bounding_boxes" (first axis = the boxes).
_PER_BOX = ("masks", "keypoints")


def _padding_values(element_spec):
    def value(spec, key):
        if key == "labels":
            return tf.constant(-1, spec.dtype)
        if spec.dtype == tf.string:
            return tf.constant("", tf.string)
        return tf.constant(False if spec.dtype == tf.bool else 0, spec.dtype)

    out = {}
    for key, spec in element_spec.items():
        if isinstance(spec, dict):
            out[key] = {k: value(s, k) for k, s in spec.items()}
        else:
            out[key] = value(spec, key)
    return out


def _truncate(max_boxes):
    def fn(data):
        data = dict(data)
        data["bounding_boxes"] = {k: v[:max_boxes] for k, v in data["bounding_boxes"].items()}
        for key in _PER_BOX:
            if key in data:
                data[key] = data[key][:max_boxes]
        return data

    return fn


def batch(
    dataset,
    batch_size,
    max_boxes=None,
    image_size=None,
    bounding_box_format=None,
    drop_remainder=False,
    num_parallel_calls=None,
):
    """Batches unbatched data-contract elements with ``-1`` label padding.

    Args:
        dataset: unbatched data-contract dataset.
        batch_size: images per batch.
        max_boxes: if given, every batch has exactly ``M = max_boxes`` box
            rows (an image's boxes beyond ``max_boxes`` are cut, keeping the
            first ones); else ``M`` is the largest ``N`` in the batch.
        image_size: ``size`` or ``(height, width)``: resize each image with
            aspect-ratio padding (`augment.resize_pad`) first. Without it,
            images of different sizes are zero-padded at the bottom / right to
            the largest in the batch (boxes stay valid in absolute formats).
        bounding_box_format: the elements' box format; required with
            ``image_size``.
        drop_remainder: drop a last, smaller batch (gives static batch size).
        num_parallel_calls: for the resize ``map`` (default AUTOTUNE).

    Returns:
        the batched ``tf.data.Dataset``.
    """
    if image_size is not None:
        if bounding_box_format is None:
            raise ValueError(
                "`batch(..., image_size=...)` needs the elements' `bounding_box_format`."
            )
        fmt = box_ops.check_format(bounding_box_format)
        height, width = image_hw(image_size)
        dataset = dataset.map(
            lambda d: resize_pad(d, height, width, fmt),
            num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
        )
    if max_boxes is not None:
        dataset = dataset.map(_truncate(int(max_boxes)))
    spec = dataset.element_spec
    shapes = tf.nest.map_structure(lambda s: s.shape, spec)
    if max_boxes is not None:
        shapes["bounding_boxes"] = {
            k: tf.TensorShape([max_boxes]).concatenate(s[1:])
            for k, s in shapes["bounding_boxes"].items()
        }
        for key in _PER_BOX:
            if key in shapes:
                shapes[key] = tf.TensorShape([max_boxes]).concatenate(shapes[key][1:])
    return dataset.padded_batch(
        batch_size,
        padded_shapes=shapes,
        padding_values=_padding_values(spec),
        drop_remainder=drop_remainder,
    )


def pipeline(
    dataset,
    batch_size,
    augment=None,
    image_size=None,
    bounding_box_format=None,
    max_boxes=None,
    shuffle=None,
    cache=False,
    seed=None,
    drop_remainder=False,
    num_parallel_calls=None,
):
    """``cache → shuffle → augment (parallel map) → batch → prefetch(AUTOTUNE)``.

    Args:
        dataset: unbatched data-contract dataset (e.g. from `load`).
        batch_size: images per batch.
        augment: optional ``element -> element`` callable, e.g.
            `augment.default_augmentation(...)`.
        image_size, bounding_box_format, max_boxes, drop_remainder: as in `batch`.
        shuffle: shuffle buffer size (``None``/0: no shuffling).
        cache: ``True`` caches decoded images in memory, a string caches to
            that file path (before augmentation, so augmentation stays random).
        seed: shuffle seed.
        num_parallel_calls: for the maps (default AUTOTUNE).

    Returns:
        the batched, prefetched dataset.
    """
    parallel = num_parallel_calls or tf.data.AUTOTUNE
    if cache:
        dataset = dataset.cache() if cache is True else dataset.cache(cache)
    if shuffle:
        dataset = dataset.shuffle(int(shuffle), seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=parallel)
    dataset = batch(
        dataset,
        batch_size,
        max_boxes=max_boxes,
        image_size=image_size,
        bounding_box_format=bounding_box_format,
        drop_remainder=drop_remainder,
        num_parallel_calls=parallel,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
