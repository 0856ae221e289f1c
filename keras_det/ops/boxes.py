"""Box primitives: format conversion, area, pairwise IoU, clipping, delta coding.

Every function here works on the last axis of a float tensor of boxes and
broadcasts over any leading axes. Inside keras_det the canonical format is
absolute-pixel ``yxyx`` = ``[ymin, xmin, ymax, xmax]`` (the order of the
``tf.image`` ops); formats are converted once, at a model's boundary.

Format names are Keras 3's (``keras.utils.bounding_boxes``): ``xyxy``,
``yxyx``, ``xywh``, ``center_xywh``, ``center_yxhw`` and the relative
``rel_xyxy``, ``rel_yxyx``, ``rel_xywh``, ``rel_center_xywh`` (coordinates
divided by the image width/height).
"""

import math

import tensorflow as tf
from keras.utils import bounding_boxes as keras_boxes

FORMATS = (
    "xyxy",
    "yxyx",
    "xywh",
    "center_xywh",
    "center_yxhw",
    "rel_xyxy",
    "rel_yxyx",
    "rel_xywh",
    "rel_center_xywh",
)

# Largest log-ratio accepted by BoxCoder.decode before exp(): log(1000 / 16),
# the clamp used by Detectron and torchvision so a wild prediction cannot
# overflow to inf.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)

# `BoxCoder` weights ``(wy, wx, wh, ww)``, spelled here only. RCNN_BOX_WEIGHTS:
# the Fast/Faster R-CNN RoI head's (and SSD's, whose "variances" 0.1, 0.1,
# 0.2, 0.2 are their inverses); UNIT_BOX_WEIGHTS: the RPN's and R-CNN's box
# regression's (the papers' plain parameterisation).
RCNN_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
UNIT_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def check_format(bounding_box_format, name="bounding_box_format"):
    """Returns the lower-cased format or raises a ValueError naming it."""
    if not isinstance(bounding_box_format, str) or (
        bounding_box_format.lower() not in FORMATS
    ):
        raise ValueError(
            f"`{name}`={bounding_box_format!r} is not a known box format; "
            f"expected one of {', '.join(FORMATS)}."
        )
    return bounding_box_format.lower()


def _image_hw(image_shape):
    """(height, width) as float32 scalars from an (H, W[, C]) shape."""
    if image_shape is None:
        return None, None
    shape = tf.cast(tf.convert_to_tensor(image_shape), tf.float32)
    return shape[0], shape[1]


def convert_format(boxes, source, target, image_shape=None):
    """Converts boxes between Keras box formats.

    The arithmetic is Keras 3's ``keras.utils.bounding_boxes.convert_format``
    (one implementation of an idea, shared with Keras' box-aware
    preprocessing layers); this wrapper adds format validation with the
    argument named in the error, and the ``image_shape`` argument of the
    keras_det contract.

    Args:
        boxes: float tensor ``[..., 4]`` in ``source`` format.
        source: format of ``boxes`` (see ``FORMATS``).
        target: format to return.
        image_shape: ``(height, width)`` or ``(height, width, channels)`` of
            the image the boxes belong to. Required when exactly one of
            ``source`` / ``target`` is a ``rel_`` format.

    Returns:
        float32 tensor ``[..., 4]`` in ``target`` format.

    Raises:
        ValueError: for an unknown format, a last axis that is not 4, or a
            relative conversion without ``image_shape``.
    """
    source = check_format(source, "source")
    target = check_format(target, "target")
    boxes = tf.convert_to_tensor(boxes)
    if boxes.shape.rank is not None and boxes.shape[-1] not in (None, 4):
        raise ValueError(
            f"`boxes` must have 4 coordinates on the last axis, got shape {boxes.shape}."
        )
    boxes = tf.cast(boxes, tf.float32)
    if source == target:
        return boxes
    needs_size = source.startswith("rel_") != target.startswith("rel_")
    if needs_size and image_shape is None:
        raise ValueError(
            f"Converting boxes from {source!r} to {target!r} needs `image_shape` "
            "(height, width) because one format is relative."
        )
    height, width = _image_hw(image_shape)
    return keras_boxes.convert_format(
        boxes, source=source, target=target, height=height, width=width
    )


def area(boxes):
    """Area of ``yxyx`` boxes ``[..., 4]`` → ``[...]``; inverted boxes give 0."""
    boxes = tf.convert_to_tensor(boxes)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def iou(boxes1, boxes2, bounding_box_format="yxyx"):
    """Pairwise intersection-over-union.

    Semantics of ``torchvision.ops.box_iou`` (continuous coordinates, no
    ``+1``), except that a pair whose union is empty (two zero-area boxes,
    e.g. padding rows) has IoU 0 instead of NaN.

    Args:
        boxes1: ``[..., N, 4]`` boxes.
        boxes2: ``[..., M, 4]`` boxes; leading axes broadcast with ``boxes1``
            (``[B, N, 4]`` with ``[B, M, 4]`` or ``[M, 4]``).
        bounding_box_format: format of both inputs; relative and absolute
            formats both work since IoU is scale-invariant per axis.

    Returns:
        float32 ``[..., N, M]``.
    """
    fmt = check_format(bounding_box_format)
    if fmt != "yxyx":
        # IoU is invariant to a per-axis scale, so a relative format can be
        # handled as if the image were 1x1.
        boxes1 = convert_format(boxes1, fmt, "yxyx", image_shape=(1.0, 1.0))
        boxes2 = convert_format(boxes2, fmt, "yxyx", image_shape=(1.0, 1.0))
    boxes1 = tf.cast(tf.convert_to_tensor(boxes1), tf.float32)
    boxes2 = tf.cast(tf.convert_to_tensor(boxes2), tf.float32)
    b1 = boxes1[..., :, None, :]
    b2 = boxes2[..., None, :, :]
    inter_h = tf.maximum(tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0]), 0.0)
    inter_w = tf.maximum(tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1]), 0.0)
    inter = inter_h * inter_w
    union = area(boxes1)[..., :, None] + area(boxes2)[..., None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def clip(boxes, image_shape):
    """Clips absolute ``yxyx`` boxes to ``[0, height] x [0, width]``.

    Args:
        boxes: ``[..., 4]`` absolute ``yxyx``.
        image_shape: ``(height, width[, channels])``, or a ``[..., 2]`` tensor
            of per-image sizes broadcastable against ``boxes[..., :2]``.
    """
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    shape = tf.cast(tf.convert_to_tensor(image_shape), tf.float32)
    if shape.shape.rank == 1:
        shape = shape[:2]
    hw = tf.concat([shape, shape], axis=-1)
    return tf.minimum(tf.maximum(boxes, 0.0), hw)


class BoxCoder:
    """Faster R-CNN box parameterisation between boxes and anchors.

    For an anchor with centre ``(ya, xa)`` and size ``(ha, wa)`` and a box with
    centre ``(y, x)`` and size ``(h, w)`` (all from absolute ``yxyx``, no
    ``+1``), the deltas are, in this order::

        dy = wy * (y - ya) / ha      dx = wx * (x - xa) / wa
        dh = wh * log(h / ha)        dw = ww * log(w / wa)

    This is ``torchvision.models.detection._utils.BoxCoder`` with the axes in
    ``yxyx`` order: torchvision's ``(dx, dy, dw, dh)`` with weights
    ``(wx, wy, ww, wh)`` equals ours permuted. ``decode`` clamps ``dh``/``dw``
    (after dividing by the weights) at ``log(1000/16)`` before ``exp``.
    The SSD "variances" (0.1, 0.1, 0.2, 0.2) are the weights (10, 10, 5, 5)
    (``RCNN_BOX_WEIGHTS``).

    One coder object serves a head's target encoder (``encode``) and its
    decoder (``decode``), so the two cannot drift apart.

    Args:
        weights: ``(wy, wx, wh, ww)`` (default ``RCNN_BOX_WEIGHTS``).
        scale_clamp: upper bound on the decoded log-size ratio.
    """

    def __init__(self, weights=RCNN_BOX_WEIGHTS, scale_clamp=BBOX_XFORM_CLIP):
        if len(weights) != 4 or any(w <= 0 for w in weights):
            raise ValueError(f"`weights` must be 4 positive numbers, got {weights!r}.")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = float(scale_clamp)

    @staticmethod
    def _center_size(boxes):
        ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
        h = ymax - ymin
        w = xmax - xmin
        return ymin + 0.5 * h, xmin + 0.5 * w, h, w

    def encode(self, boxes, anchors):
        """Deltas that turn ``anchors`` into ``boxes``.

        Args:
            boxes: ``[..., 4]`` absolute ``yxyx`` targets.
            anchors: ``[..., 4]`` absolute ``yxyx``, broadcastable with ``boxes``;
                must have positive height and width.

        Returns:
            float32 ``[..., 4]`` deltas ``(dy, dx, dh, dw)``.
        """
        boxes = tf.cast(boxes, tf.float32)
        anchors = tf.cast(anchors, tf.float32)
        y, x, h, w = self._center_size(boxes)
        ya, xa, ha, wa = self._center_size(anchors)
        wy, wx, wh, ww = self.weights
        return tf.stack(
            [
                wy * (y - ya) / ha,
                wx * (x - xa) / wa,
                wh * tf.math.log(h / ha),
                ww * tf.math.log(w / wa),
            ],
            axis=-1,
        )

    def decode(self, deltas, anchors):
        """Boxes from ``deltas`` applied to ``anchors``.

        Args:
            deltas: ``[..., 4]`` ``(dy, dx, dh, dw)``.
            anchors: ``[..., 4]`` absolute ``yxyx``, broadcastable with ``deltas``.

        Returns:
            float32 ``[..., 4]`` absolute ``yxyx`` boxes.
        """
        deltas = tf.cast(deltas, tf.float32)
        anchors = tf.cast(anchors, tf.float32)
        ya, xa, ha, wa = self._center_size(anchors)
        wy, wx, wh, ww = self.weights
        dy, dx, dh, dw = tf.unstack(deltas, axis=-1)
        dy = dy / wy
        dx = dx / wx
        dh = tf.minimum(dh / wh, self.scale_clamp)
        dw = tf.minimum(dw / ww, self.scale_clamp)
        y = dy * ha + ya
        x = dx * wa + xa
        h = tf.exp(dh) * ha
        w = tf.exp(dw) * wa
        return tf.stack([y - 0.5 * h, x - 0.5 * w, y + 0.5 * h, x + 0.5 * w], axis=-1)

    def get_config(self):
        return {"weights": self.weights, "scale_clamp": self.scale_clamp}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, BoxCoder) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash((self.weights, self.scale_clamp))

    def __repr__(self):
        return f"BoxCoder(weights={self.weights}, scale_clamp={self.scale_clamp:.4g})"


def as_box_coder(coder):
    """A ``BoxCoder`` from a coder, a 4-tuple of weights or a ``get_config`` dict; ``None`` stays ``None``."""
    if coder is None or isinstance(coder, BoxCoder):
        return coder
    if isinstance(coder, dict):
        return BoxCoder.from_config(coder)
    return BoxCoder(tuple(coder))


def context_boxes(boxes, warp_size, context_padding):
    """Expands ``yxyx`` boxes so that, warped to ``warp_size``, the original
    box fills ``warp_size - 2 * context_padding`` pixels (R-CNN's "16 px of
    context").

    Args:
        boxes: ``[..., 4]`` absolute ``yxyx``.
        warp_size: side ``S`` of the warped window.
        context_padding: ``p`` in warped pixels (16 in the paper).

    Returns:
        ``[..., 4]`` expanded boxes (may extend beyond the image).

    Raises:
        ValueError: a padding that leaves no room (``S - 2p <= 0``).
    """
    boxes = tf.cast(boxes, tf.float32)
    inner = float(warp_size - 2 * context_padding)
    if inner <= 0:
        raise ValueError(f"`context_padding`={context_padding} leaves no room in a {warp_size}-px window.")
    factor = float(warp_size) / inner
    cy = 0.5 * (boxes[..., 0] + boxes[..., 2])
    cx = 0.5 * (boxes[..., 1] + boxes[..., 3])
    h = (boxes[..., 2] - boxes[..., 0]) * factor
    w = (boxes[..., 3] - boxes[..., 1]) * factor
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)
