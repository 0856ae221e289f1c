"""Detection losses on dense, padded targets (from ``keras_det.ops.targets``).

Every loss takes per-prediction tensors ``[B, N, ...]`` and a weight ``[B, N]``
(0 for predictions that take no part), and returns a scalar normalised by a
count the caller chooses, following the papers:

* Faster R-CNN (torchvision's reference): classification losses are means
  over the sampled predictions; box losses are sums over positives divided by
  the number of sampled predictions.
* SSD: both terms summed and divided by the number of positives, negatives
  picked by ``hard_negative_mask`` (3 negatives per positive).
* YOLO v1 (``yolo_v1_loss``): sum-squared terms summed over the grid and
  divided by the number of images.

Counts are global: under ``tf.distribute`` every normaliser is the count over
all replicas' examples (``replica_normalizer``), so a step on ``R`` replicas
equals a step on one device with the same global batch.
"""

import tensorflow as tf

from keras_det.ops import iou_losses


def replica_normalizer(count):
    """This replica's share of a normaliser counted over the global batch.

    Under ``tf.distribute`` each replica sees a slice of the batch; a loss
    normalised by this replica's own count of positives / sampled predictions
    weighs the replicas' examples unequally (and differently from one device).
    In a replica context of a strategy with ``R > 1`` replicas this all-reduces
    ``count`` (SUM over replicas) and returns ``max(global_count, 1) / R``:
    summing over replicas the per-replica losses divided by it, each scaled by
    ``1 / R`` in ``train_step``, gives the one-device loss of the global batch.
    Otherwise (no strategy, one replica, cross-replica context) it returns
    ``max(count, 1)``.

    Args:
        count: scalar (int or float), this replica's count.

    Returns:
        float32 scalar.
    """
    count = tf.stop_gradient(tf.cast(count, tf.float32))
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.maximum(count, 1.0)
    total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.maximum(total, 1.0) / float(ctx.num_replicas_in_sync)


def replica_mean_scale(loss):
    """``loss / R`` under a strategy with ``R`` replicas in sync (Keras' own
    ``scale_loss_for_distribution`` rule), ``loss`` otherwise: the optimizer
    sums the replicas' gradients."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss * tf.cast(1.0 / replicas, loss.dtype)
    return loss


def smooth_l1(x, beta=1.0 / 9.0):
    """Huber-style smooth L1 per element: ``0.5 x² / β`` if ``|x| < β`` else ``|x| - 0.5 β``.

    ``beta=1/9`` is the Faster R-CNN / torchvision choice; ``beta=0`` is L1.
    """
    x = tf.abs(x)
    if beta == 0:
        return x
    return tf.where(x < beta, 0.5 * tf.square(x) / beta, x - 0.5 * beta)


def box_regression_loss(pred_deltas, target_deltas, weights, normalizer, kind="smooth_l1", beta=1.0 / 9.0):
    """Weighted box regression loss.

    Args:
        pred_deltas, target_deltas: float ``[B, N, 4]``.
        weights: float ``[B, N]`` (1 for positives).
        normalizer: scalar the summed loss is divided by (clamped to >= 1;
            summed over replicas under ``tf.distribute``, see ``replica_normalizer``).
        kind: ``"smooth_l1"`` or ``"l2"`` (sum of squares, the
            classification + localization model's loss).
        beta: smooth-L1 transition point.

    Returns:
        float32 scalar.
    """
    diff = tf.cast(pred_deltas, tf.float32) - tf.cast(target_deltas, tf.float32)
    if kind == "smooth_l1":
        per = tf.reduce_sum(smooth_l1(diff, beta), axis=-1)
    elif kind == "l2":
        per = tf.reduce_sum(tf.square(diff), axis=-1)
    else:
        raise ValueError(f"`kind` must be 'smooth_l1' or 'l2', got {kind!r}.")
    return tf.reduce_sum(per * tf.cast(weights, tf.float32)) / replica_normalizer(normalizer)


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
YOLO_V1_CONFIDENCE_TARGETS = ("iou", "one")


def yolo_v1_loss(pred_values, pred_boxes, confidence, class_probs, target_values, target_boxes, object_mask, labels,
                 lambda_coord=5.0, lambda_noobj=0.5, confidence_target="iou"):
    """YOLO v1's sum-squared loss (Redmon et al., 2016, eq. 3), per term.

    With ``1obj_i`` = a GT centre falls in cell ``i`` and ``1obj_ij`` = predictor
    ``j`` of that cell is *responsible* for it (of the cell's predictors, the
    one whose predicted box has the highest IoU with the GT; ties go to the
    first), and ``1noobj_ij = 1 - 1obj_ij``::

        coord_loss = λcoord Σ_ij 1obj_ij [(y-ŷ)² + (x-x̂)² + (√h-√ĥ)² + (√w-√ŵ)²]
        obj_loss   =        Σ_ij 1obj_ij (C_ij - Ĉ)²,   Ĉ = IoU(box_ij, GT) (or 1)
        noobj_loss = λnoobj Σ_ij 1noobj_ij C_ij²
        class_loss =        Σ_i 1obj_i Σ_c (p_i(c) - p̂_i(c))²,  p̂ one-hot

    each divided by the number of images (global under ``tf.distribute``).
    The responsibility and the IoU target get no gradient.

    Args:
        pred_values: ``[B, N, nb, 4]`` values ``(y, x, √h, √w)`` of the ``nb``
            predictors of each of the ``N = S·S`` cells (``GridCellCoder``'s).
        pred_boxes: ``[B, N, nb, 4]`` the same boxes decoded, absolute ``yxyx``.
        confidence: ``[B, N, nb]`` predicted confidences.
        class_probs: ``[B, N, C]`` class probabilities of each cell.
        target_values: ``[B, N, 4]`` encoded GT of each cell (zeros where empty).
        target_boxes: ``[B, N, 4]`` GT box of each cell, absolute ``yxyx``.
        object_mask: ``[B, N]`` float, 1 where a GT centre falls.
        labels: int ``[B, N]`` 0-based GT class of each cell (any value where empty).
        lambda_coord, lambda_noobj: the paper's 5 and 0.5.
        confidence_target: ``"iou"`` (the paper) or ``"one"``.

    Returns:
        dict of float32 scalars ``coord_loss``, ``obj_loss``, ``noobj_loss``,
        ``class_loss`` (weights applied).
    """
    if confidence_target not in YOLO_V1_CONFIDENCE_TARGETS:
        raise ValueError(f"`confidence_target` must be one of {YOLO_V1_CONFIDENCE_TARGETS}, got {confidence_target!r}.")
    pred_values = tf.cast(pred_values, tf.float32)
    confidence = tf.cast(confidence, tf.float32)
    class_probs = tf.cast(class_probs, tf.float32)
    obj = tf.cast(object_mask, tf.float32)
    ious = tf.stop_gradient(iou_losses.elementwise_iou(pred_boxes, tf.cast(target_boxes, tf.float32)[..., None, :]))
    num_predictors = tf.shape(confidence)[-1]
    responsible = tf.one_hot(tf.argmax(ious, axis=-1), num_predictors) * obj[..., None]  # [B, N, nb]
    squared = tf.reduce_sum(tf.square(pred_values - tf.cast(target_values, tf.float32)[..., None, :]), -1)
    conf_target = ious if confidence_target == "iou" else tf.ones_like(ious)
    onehot = tf.one_hot(tf.maximum(tf.cast(labels, tf.int32), 0), tf.shape(class_probs)[-1])
    images = replica_normalizer(tf.shape(obj)[0])
    return {
        "coord_loss": lambda_coord * tf.reduce_sum(responsible * squared) / images,
        "obj_loss": tf.reduce_sum(responsible * tf.square(confidence - conf_target)) / images,
        "noobj_loss": lambda_noobj * tf.reduce_sum((1.0 - responsible) * tf.square(confidence)) / images,
        "class_loss": tf.reduce_sum(obj * tf.reduce_sum(tf.square(class_probs - onehot), -1)) / images,
    }
