"""Mask R-CNN's per-RoI branch losses: the mask and the keypoint heatmaps (He et al., 2017).

Both are averaged over what counts (positive RoIs, visible keypoints), the
count summed over replicas (``replica_normalizer``). Targets come from
``keras_det.ops.targets.mask_targets`` / ``keypoint_targets``.
"""

import tensorflow as tf

from keras_det.losses.replica import replica_normalizer


def mask_loss(logits, targets, weights):
    """Per-pixel binary cross-entropy of each RoI's mask, averaged per RoI, then over RoIs.

    Args:
        logits: float ``[B, R, h, w]`` mask logits of each RoI's GT class.
        targets: float ``[B, R, h, w]`` in {0, 1}.
        weights: float ``[B, R]`` (1 for positive RoIs).

    Returns:
        float32 scalar ``Σ_r w_r mean_pixels(BCE_r) / Σ_r w_r``.
    """
    per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    per_roi = tf.reduce_mean(per_pixel, axis=[2, 3])
    return tf.reduce_sum(per_roi * weights) / replica_normalizer(tf.reduce_sum(weights))


def keypoint_loss(logits, target_index, weights):
    """Softmax cross-entropy over each keypoint heatmap's ``h·w`` cells.

    Args:
        logits: float ``[B, R, h, w, K]`` heatmap logits, one channel per keypoint type.
        target_index: int ``[B, R, K]`` flat cell ``iy * w + ix`` of each target keypoint.
        weights: float ``[B, R, K]`` (1 for visible keypoints of positive RoIs).

    Returns:
        float32 scalar ``Σ w CE / Σ w``.
    """
    shape = tf.shape(logits)
    flat = tf.reshape(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.concat([shape[:2], [shape[4], shape[2] * shape[3]]], 0))
    per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_index, logits=flat)
    return tf.reduce_sum(per * weights) / replica_normalizer(tf.reduce_sum(weights))
