"""Box losses: smooth-L1 / L2 on deltas and the IoU family (IoU, GIoU, DIoU, CIoU).

``smooth_l1`` and ``box_regression_loss`` compare encoded deltas
(``keras_det.ops.boxes.BoxCoder``). The IoU-family functions compare boxes
*elementwise*: ``boxes1[..., 4]`` with ``boxes2[..., 4]`` of the same
(broadcastable) shape, which is what a box loss on matched predictions needs
(unlike ``keras_det.ops.boxes.iou``, pairwise ``[N, M]``). They return the
similarity; the loss is ``1 - giou`` or ``1 - ciou``.

* GIoU (Rezatofighi et al., 2019): ``IoU - |C \\ (A ∪ B)| / |C|`` with ``C`` the
  smallest box enclosing both; in ``(-1, 1]``, and still informative (and
  differentiable) when the boxes do not overlap.
* DIoU (Zheng et al., 2020): ``IoU - ρ² / c²`` with ``ρ`` the distance between
  the centres and ``c`` the diagonal of the enclosing box.
* CIoU (same paper): ``DIoU - α v`` with the aspect-ratio term
  ``v = 4/π² (atan(w_2/h_2) - atan(w_1/h_1))²`` and
  ``α = v / ((1 - IoU) + v)``; ``α`` is a trade-off weight and gets no gradient,
  as in the authors' code.

IoU-family inputs are absolute ``yxyx`` by default; ``bounding_box_format``
names another format (relative formats are read as if the image were 1×1,
which leaves IoU and GIoU unchanged but changes the distance and aspect terms
of DIoU / CIoU on non-square images: give those absolute boxes).
``elementwise_iou`` lives here rather than in ``keras_det.ops.boxes``: it
shares the intersection / union / enclosing-box arithmetic with GIoU, DIoU
and CIoU, and only losses use it (YOLO v1's responsible predictor and
confidence target).
"""

import math

import tensorflow as tf

from keras_det.losses.replica import replica_normalizer
from keras_det.ops import boxes as box_ops

_EPS = 1e-7


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


def _prepare(boxes1, boxes2, bounding_box_format):
    fmt = box_ops.check_format(bounding_box_format)
    if fmt != "yxyx":
        boxes1 = box_ops.convert_format(boxes1, fmt, "yxyx", image_shape=(1.0, 1.0))
        boxes2 = box_ops.convert_format(boxes2, fmt, "yxyx", image_shape=(1.0, 1.0))
    return tf.cast(boxes1, tf.float32), tf.cast(boxes2, tf.float32)


def _parts(b1, b2):
    """Intersection, union and enclosing-box corners of elementwise pairs."""
    y1a, x1a, y2a, x2a = tf.unstack(b1, axis=-1)
    y1b, x1b, y2b, x2b = tf.unstack(b2, axis=-1)
    inter = tf.maximum(tf.minimum(y2a, y2b) - tf.maximum(y1a, y1b), 0.0) * tf.maximum(
        tf.minimum(x2a, x2b) - tf.maximum(x1a, x1b), 0.0
    )
    union = box_ops.area(b1) + box_ops.area(b2) - inter
    enclosing = (tf.minimum(y1a, y1b), tf.minimum(x1a, x1b), tf.maximum(y2a, y2b), tf.maximum(x2a, x2b))
    return inter, union, enclosing


def elementwise_iou(boxes1, boxes2, bounding_box_format="yxyx"):
    """IoU of matching pairs: ``[..., 4]`` × ``[..., 4]`` → ``[...]`` (0 for empty unions)."""
    b1, b2 = _prepare(boxes1, boxes2, bounding_box_format)
    inter, union, _ = _parts(b1, b2)
    return inter / (union + _EPS)


def giou(boxes1, boxes2, bounding_box_format="yxyx"):
    """Generalized IoU of matching pairs.

    Args:
        boxes1, boxes2: float ``[..., 4]`` (broadcastable) in ``bounding_box_format``.
        bounding_box_format: format of both inputs (absolute ``yxyx`` by default).

    Returns:
        float32 ``[...]`` in ``(-1, 1]``; ``1 - giou`` is the GIoU loss.

    Example: ``[0, 0, 2, 2]`` and ``[1, 1, 3, 3]`` (``yxyx``): IoU = 1/7, the
    enclosing box has area 9, so GIoU = 1/7 - (9 - 7)/9 = 1/7 - 2/9.
    """
    b1, b2 = _prepare(boxes1, boxes2, bounding_box_format)
    inter, union, (ey1, ex1, ey2, ex2) = _parts(b1, b2)
    iou = inter / (union + _EPS)
    enclosing_area = (ey2 - ey1) * (ex2 - ex1)
    return iou - (enclosing_area - union) / (enclosing_area + _EPS)


def _centre_distance_term(b1, b2, enclosing):
    ey1, ex1, ey2, ex2 = enclosing
    c2 = tf.square(ey2 - ey1) + tf.square(ex2 - ex1)
    rho2 = tf.square((b1[..., 0] + b1[..., 2] - b2[..., 0] - b2[..., 2]) / 2.0) + tf.square(
        (b1[..., 1] + b1[..., 3] - b2[..., 1] - b2[..., 3]) / 2.0
    )
    return rho2 / (c2 + _EPS)


def diou(boxes1, boxes2, bounding_box_format="yxyx"):
    """Distance IoU of matching pairs: ``IoU - ρ²/c²`` → float32 ``[...]`` in ``(-1, 1]``."""
    b1, b2 = _prepare(boxes1, boxes2, bounding_box_format)
    inter, union, enclosing = _parts(b1, b2)
    return inter / (union + _EPS) - _centre_distance_term(b1, b2, enclosing)


def ciou(boxes1, boxes2, bounding_box_format="yxyx"):
    """Complete IoU of matching pairs.

    Args:
        boxes1: float ``[..., 4]`` predictions in ``bounding_box_format``.
        boxes2: float ``[..., 4]`` targets (the aspect term is symmetric, so
            the order only matters for which side gets gradients).
        bounding_box_format: format of both inputs (absolute ``yxyx`` by default).

    Returns:
        float32 ``[...]``; ``1 - ciou`` is the CIoU loss. Equals DIoU when the
        two boxes have the same aspect ratio.

    Example: ``[0, 0, 2, 2]`` and ``[0, 0, 2, 4]`` (``yxyx``): IoU = 1/2, the
    centres are 1 apart and the enclosing diagonal² is 20, so DIoU = 1/2 - 1/20;
    ``v = 4/π² (atan(2) - atan(1))²``, ``α = v / (1/2 + v)``.
    """
    b1, b2 = _prepare(boxes1, boxes2, bounding_box_format)
    inter, union, enclosing = _parts(b1, b2)
    iou = inter / (union + _EPS)
    h1 = b1[..., 2] - b1[..., 0]
    w1 = b1[..., 3] - b1[..., 1]
    h2 = b2[..., 2] - b2[..., 0]
    w2 = b2[..., 3] - b2[..., 1]
    v = (4.0 / math.pi**2) * tf.square(tf.atan(w2 / (h2 + _EPS)) - tf.atan(w1 / (h1 + _EPS)))
    alpha = tf.stop_gradient(v / ((1.0 - iou) + v + _EPS))
    return iou - _centre_distance_term(b1, b2, enclosing) - alpha * v
