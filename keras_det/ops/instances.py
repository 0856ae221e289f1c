"""Per-instance outputs of the RoI branches, in image space.

``paste_masks`` puts box-frame masks (Mask R-CNN's 28×28) back into the image;
``decode_keypoints`` turns per-box heatmaps into points; ``pad_slots`` pads
what the branches computed for the first detection slots back to all ``K``.
They invert ``keras_det.ops.targets.mask_targets`` / ``keypoint_targets``.
"""

import tensorflow as tf


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Pastes box-frame masks into full images.

    Args:
        masks: ``[K, h, w]`` probabilities in each box's frame.
        boxes: ``[K, 4]`` absolute ``yxyx``.
        image_shape: ``(H, W)``.
        threshold: binarisation threshold.

    Returns:
        bool ``[K, H, W]``.
    """
    masks = tf.convert_to_tensor(masks, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    height, width = int(image_shape[0]), int(image_shape[1])
    ys = tf.range(height, dtype=tf.float32) + 0.5
    xs = tf.range(width, dtype=tf.float32) + 0.5
    y1, x1, y2, x2 = [boxes[:, i : i + 1] for i in range(4)]
    mh = tf.cast(tf.shape(masks)[1], tf.float32)
    mw = tf.cast(tf.shape(masks)[2], tf.float32)
    # Position of every image pixel centre in each mask's pixel-centre frame.
    fy = (ys[None, :] - y1) / tf.maximum(y2 - y1, 1e-6) * mh - 0.5
    fx = (xs[None, :] - x1) / tf.maximum(x2 - x1, 1e-6) * mw - 0.5
    boxes_n = tf.stack(
        [fy[:, 0] / tf.maximum(mh - 1, 1.0), fx[:, 0] / tf.maximum(mw - 1, 1.0), fy[:, -1] / tf.maximum(mh - 1, 1.0), fx[:, -1] / tf.maximum(mw - 1, 1.0)],
        axis=-1,
    )
    pasted = tf.image.crop_and_resize(
        masks[..., None], boxes_n, tf.range(tf.shape(masks)[0]), (height, width), extrapolation_value=0.0
    )[..., 0]
    inside_y = (ys[None, :] >= y1) & (ys[None, :] < y2)
    inside_x = (xs[None, :] >= x1) & (xs[None, :] < x2)
    return (pasted >= threshold) & inside_y[:, :, None] & inside_x[:, None, :]


def decode_keypoints(logits, boxes):
    """Keypoint heatmaps → points: the arg-max cell's centre in image pixels.

    Args:
        logits: ``[B, D, h, w, K]`` heatmap logits over each box.
        boxes: ``[B, D, 4]`` absolute ``yxyx``.

    Returns:
        float32 ``[B, D, K, 3]``: ``(x, y, probability)`` with the softmax
        probability of the chosen cell.
    """
    shape = tf.shape(logits)
    h, w = shape[2], shape[3]
    flat = tf.reshape(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.concat([shape[:2], [shape[4], h * w]], 0))
    probs = tf.nn.softmax(flat, axis=-1)
    best = tf.argmax(flat, axis=-1, output_type=tf.int32)
    iy = tf.cast(best // w, tf.float32)
    ix = tf.cast(best % w, tf.float32)
    y1, x1, y2, x2 = [boxes[..., i : i + 1] for i in range(4)]
    y = y1 + (iy + 0.5) * (y2 - y1) / tf.cast(h, tf.float32)
    x = x1 + (ix + 0.5) * (x2 - x1) / tf.cast(w, tf.float32)
    return tf.stack([x, y, tf.reduce_max(probs, axis=-1)], axis=-1)


def used_slots(valid):
    """How many leading slots hold every valid entry of a padded batch: 1 + the last ``True`` index of
    ``valid [B, P]`` over the batch, at least 1 (TF's CPU kernels mis-shape some empty batches).

    ``x[:, :used_slots(valid)]`` keeps every valid entry, wherever the padding is.
    """
    positions = tf.range(1, tf.shape(valid)[1] + 1)
    return tf.maximum(tf.reduce_max(tf.where(valid, positions[None], 0)), 1)


def pad_slots(x, labels):
    """Zero-pads ``[B, k, ...]`` to the ``K`` detection slots of ``labels [B, K]`` (the slots the branches skipped)."""
    slots = tf.shape(labels)[1]
    paddings = tf.concat([[[0, 0], [0, slots - tf.shape(x)[1]]], tf.zeros([x.shape.rank - 2, 2], tf.int32)], 0)
    padded = tf.pad(x, paddings)
    padded.set_shape(labels.shape[:2].concatenate(x.shape[2:]))
    return padded
