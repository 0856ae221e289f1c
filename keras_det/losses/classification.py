"""Classification losses: softmax / binary cross-entropy, focal loss, SSD's
hard negative mining and R-CNN's SVM squared hinge.

Each takes per-prediction tensors ``[B, N, ...]`` with a weight ``[B, N]``
(0 for predictions that take no part) and returns a float32 scalar divided
by a global count (``replica_normalizer``).
"""

import tensorflow as tf

from keras_det.losses.replica import replica_normalizer


def softmax_cross_entropy(logits, labels, weights, normalizer=None):
    """Weighted sparse softmax cross-entropy.

    Args:
        logits: float ``[B, N, K]``.
        labels: int ``[B, N]`` in ``[0, K)``; entries with weight 0 may hold -1.
        weights: float ``[B, N]``.
        normalizer: divides the weighted sum; defaults to ``sum(weights)``
            (summed over replicas under ``tf.distribute``, see ``replica_normalizer``).
    """
    weights = tf.cast(weights, tf.float32)
    labels = tf.maximum(tf.cast(labels, tf.int32), 0)
    per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    if normalizer is None:
        normalizer = tf.reduce_sum(weights)
    return tf.reduce_sum(per * weights) / replica_normalizer(normalizer)


def binary_cross_entropy(logits, labels, weights, normalizer=None):
    """Weighted sigmoid cross-entropy; ``labels`` in {0, 1} (float or int), ``[B, N]``."""
    weights = tf.cast(weights, tf.float32)
    per = tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(tf.cast(labels, tf.int32) > 0, tf.float32), logits=tf.cast(logits, tf.float32)
    )
    if normalizer is None:
        normalizer = tf.reduce_sum(weights)
    return tf.reduce_sum(per * weights) / replica_normalizer(normalizer)


def hard_negative_mask(negative_losses, positive_mask, negative_mask, ratio=3, min_negatives=0):
    """SSD hard negative mining: the highest-loss negatives, ``ratio`` per positive.

    Per image keeps ``k = min(ratio * num_positives, num_negatives)`` negatives
    (at least ``min(min_negatives, num_negatives)``, so an image without
    objects still trains its background), those with the largest loss.

    Args:
        negative_losses: float ``[B, N]`` background-class loss per prediction.
        positive_mask: bool ``[B, N]``.
        negative_mask: bool ``[B, N]`` candidates (not positive, not ignored).
        ratio: negatives per positive (3 in SSD).
        min_negatives: floor on the count per image.

    Returns:
        bool ``[B, N]`` of the selected negatives.
    """
    positive_mask = tf.cast(positive_mask, tf.bool)
    negative_mask = tf.cast(negative_mask, tf.bool)
    num_pos = tf.reduce_sum(tf.cast(positive_mask, tf.int32), axis=-1, keepdims=True)
    num_neg = tf.reduce_sum(tf.cast(negative_mask, tf.int32), axis=-1, keepdims=True)
    k = tf.minimum(tf.maximum(ratio * num_pos, min_negatives), num_neg)
    scores = tf.where(negative_mask, tf.cast(negative_losses, tf.float32), -float("inf"))
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=-1, stable=True)
    return negative_mask & (rank < k)


def sigmoid_focal_loss(logits, targets, weights=None, normalizer=None, alpha=0.25, gamma=2.0):
    """Focal loss (Lin et al., RetinaNet), per-class sigmoids, as ``torchvision.ops.sigmoid_focal_loss``.

    ``FL = alpha_t (1 - p_t)^gamma BCE(logits, targets)`` with ``p = sigmoid(logits)``,
    ``p_t = p t + (1 - p)(1 - t)`` and ``alpha_t = alpha t + (1 - alpha)(1 - t)``
    (``alpha < 0`` turns the class weighting off). One-hot ``targets`` give the
    RetinaNet classification loss; ``gamma = 0, alpha < 0`` is plain BCE.

    Args:
        logits: float ``[..., K]``.
        targets: ``[..., K]`` in {0, 1} (soft targets in [0, 1] are allowed).
        weights: optional ``[...]`` (per row, broadcast over ``K``) or
            ``[..., K]``; default 1.
        normalizer: divides the weighted sum (RetinaNet: the number of positive
            anchors); default the number of rows weighted > 0. Summed over
            replicas under ``tf.distribute`` (``replica_normalizer``).

    Returns:
        A float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.float32)
    p = tf.sigmoid(logits)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    p_t = p * targets + (1.0 - p) * (1.0 - targets)
    loss = ce * tf.pow(1.0 - p_t, gamma)
    if alpha >= 0:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    if weights is None:
        weights = tf.ones(tf.shape(logits)[:-1], tf.float32)
    weights = tf.cast(weights, tf.float32)
    row_weights = weights if weights.shape.rank == loss.shape.rank - 1 else tf.reduce_max(weights, axis=-1)
    if weights.shape.rank == loss.shape.rank - 1:
        weights = weights[..., None]
    if normalizer is None:
        normalizer = tf.reduce_sum(tf.cast(row_weights > 0, tf.float32))
    return tf.reduce_sum(loss * weights) / replica_normalizer(normalizer)


def svm_squared_hinge_loss(pos_scores, pos_labels, neg_scores, neg_valid, negative_ratio=3, kernel=None, l2=0.0):
    """R-CNN's one-vs-rest linear SVMs: squared hinge, hard negative mining, L2.

    Positive windows (the GT boxes) are positives of their class (target
    ``+1``) and negatives of every other class (``-1``); a background window
    is a negative of every class. Of the background windows of each image,
    the ``negative_ratio × #positives`` (at least ``negative_ratio``) with the
    largest hinge loss are kept (``hard_negative_mask``)::

        hinge(s, y) = Σ_k max(0, 1 - y_k s_k)²
        loss = (Σ_pos hinge + Σ_kept-neg hinge) / (#pos + #kept-neg) + l2 ||kernel||²

    Args:
        pos_scores: float ``[B, M, K]`` SVM margins of the positive windows.
        pos_labels: int ``[B, M]`` 0-based classes, ``-1`` for padding.
        neg_scores: float ``[B, N, K]`` margins of the background windows.
        neg_valid: bool ``[B, N]`` background windows that may be picked.
        negative_ratio: kept negatives per positive (and the per-image floor).
        kernel: optional ``[D, K]`` SVM weights for the L2 penalty.
        l2: penalty weight (ignored without ``kernel``).

    Returns:
        float32 scalar (the count summed over replicas, ``replica_normalizer``).
    """
    pos_scores = tf.cast(pos_scores, tf.float32)
    neg_scores = tf.cast(neg_scores, tf.float32)
    pos_valid = pos_labels >= 0
    y = tf.where(tf.one_hot(tf.maximum(pos_labels, 0), tf.shape(pos_scores)[-1]) > 0, 1.0, -1.0)
    pos_loss = tf.reduce_sum(tf.square(tf.nn.relu(1.0 - y * pos_scores)), -1)
    neg_loss = tf.reduce_sum(tf.square(tf.nn.relu(1.0 + neg_scores)), -1)
    hard = hard_negative_mask(
        tf.stop_gradient(neg_loss), pos_valid, neg_valid, ratio=negative_ratio, min_negatives=negative_ratio
    )
    pos_w = tf.cast(pos_valid, tf.float32)
    neg_w = tf.cast(hard, tf.float32)
    total = tf.reduce_sum(pos_loss * pos_w) + tf.reduce_sum(neg_loss * neg_w)
    count = replica_normalizer(tf.reduce_sum(pos_w) + tf.reduce_sum(neg_w))
    loss = total / count
    if kernel is not None:
        loss = loss + l2 * tf.reduce_sum(tf.square(kernel))
    return loss
