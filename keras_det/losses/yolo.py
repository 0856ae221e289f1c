"""YOLO v1's sum-squared loss (Redmon et al., 2016)."""

import tensorflow as tf

from keras_det.losses.box import elementwise_iou
from keras_det.losses.replica import replica_normalizer

YOLO_V1_CONFIDENCE_TARGETS = ("iou", "one")
YOLO_V1_CLASS_LOSSES = ("sse", "ce")
YOLO_V1_CONFIDENCE_LOSSES = ("sse", "bce")


def check_yolo_v1_options(confidence_target="iou", class_loss="sse", confidence_loss="sse"):
    """Raises ValueError naming the first of YOLO v1's loss options that is not one of its choices."""
    for name, value, allowed in (("confidence_target", confidence_target, YOLO_V1_CONFIDENCE_TARGETS),
                                 ("class_loss", class_loss, YOLO_V1_CLASS_LOSSES),
                                 ("confidence_loss", confidence_loss, YOLO_V1_CONFIDENCE_LOSSES)):
        if value not in allowed:
            raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")


def yolo_v1_loss(pred_values, pred_boxes, confidence, class_probs, target_values, target_boxes, object_mask, labels,
                 lambda_coord=5.0, lambda_noobj=0.5, confidence_target="iou", class_loss="sse",
                 confidence_loss="sse", class_logits=None, confidence_logits=None):
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

    Cross-entropy variants (a deviation from the paper, for training from
    scratch; see docs/single_stage.md): ``class_loss="ce"`` replaces the class
    term by ``Σ_i 1obj_i · -log p_i(c_i)`` (softmax cross-entropy of
    ``class_logits``), ``confidence_loss="bce"`` replaces the squares in
    ``obj_loss`` / ``noobj_loss`` by the binary cross-entropy of
    ``confidence_logits`` against the same targets (Ĉ for a responsible
    predictor, 0 otherwise). A squared error through a softmax / sigmoid has a
    gradient that vanishes as the output saturates; the cross-entropies' does
    not (measured on ``shapes``: AP50 0.005 → 0.31–0.45, docs/single_stage.md).

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
        class_loss: ``"sse"`` (the paper) or ``"ce"`` (needs ``class_logits``).
        confidence_loss: ``"sse"`` (the paper) or ``"bce"`` (needs ``confidence_logits``).
        class_logits: ``[B, N, C]`` the logits of ``class_probs``.
        confidence_logits: ``[B, N, nb]`` the logits of ``confidence``.

    Returns:
        dict of float32 scalars ``coord_loss``, ``obj_loss``, ``noobj_loss``,
        ``class_loss`` (weights applied).
    """
    check_yolo_v1_options(confidence_target, class_loss, confidence_loss)
    if class_loss == "ce" and class_logits is None:
        raise ValueError("class_loss='ce' needs `class_logits`.")
    if confidence_loss == "bce" and confidence_logits is None:
        raise ValueError("confidence_loss='bce' needs `confidence_logits`.")
    pred_values = tf.cast(pred_values, tf.float32)
    confidence = tf.cast(confidence, tf.float32)
    class_probs = tf.cast(class_probs, tf.float32)
    obj = tf.cast(object_mask, tf.float32)
    ious = tf.stop_gradient(elementwise_iou(pred_boxes, tf.cast(target_boxes, tf.float32)[..., None, :]))
    num_predictors = tf.shape(confidence)[-1]
    responsible = tf.one_hot(tf.argmax(ious, axis=-1), num_predictors) * obj[..., None]  # [B, N, nb]
    squared = tf.reduce_sum(tf.square(pred_values - tf.cast(target_values, tf.float32)[..., None, :]), -1)
    conf_target = ious if confidence_target == "iou" else tf.ones_like(ious)
    labels = tf.maximum(tf.cast(labels, tf.int32), 0)
    if confidence_loss == "sse":
        obj_terms = tf.square(confidence - conf_target)
        noobj_terms = tf.square(confidence)
    else:
        logits = tf.cast(confidence_logits, tf.float32)
        obj_terms = tf.nn.sigmoid_cross_entropy_with_logits(labels=conf_target, logits=logits)
        noobj_terms = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(logits), logits=logits)
    if class_loss == "sse":
        onehot = tf.one_hot(labels, tf.shape(class_probs)[-1])
        class_terms = tf.reduce_sum(tf.square(class_probs - onehot), -1)
    else:
        class_terms = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(class_logits, tf.float32))
    images = replica_normalizer(tf.shape(obj)[0])
    return {
        "coord_loss": lambda_coord * tf.reduce_sum(responsible * squared) / images,
        "obj_loss": tf.reduce_sum(responsible * obj_terms) / images,
        "noobj_loss": lambda_noobj * tf.reduce_sum((1.0 - responsible) * noobj_terms) / images,
        "class_loss": tf.reduce_sum(obj * class_terms) / images,
    }
