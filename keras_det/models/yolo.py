"""YOLO: a multiscale YOLOv3-style detector with an FPN/PAN neck and an
IoU-aware box loss. (YOLO v1's S×S grid is `keras_det.models.YOLOv1`.)

::

    images ─ backbone ─ C3, C4, C5 ─ YOLONeck (FPN + PAN) ─ YOLOHead ─ per prior: box, objectness, classes
           ─ σ ─ PriorCellCoder.decode ─ σ(objectness) · σ(class) ─ NMS

* Three scales (strides 8, 16, 32), three priors each (YOLOv3's COCO priors
  scaled to the image size by default; ``keras_det.ops.anchors.kmeans_anchors``
  computes them from training boxes, ``priors_per_level`` splits them).
* Assignment (YOLOv3): each GT goes to the prior with the highest
  width/height IoU (over all scales), in the cell of that scale that holds
  its centre — the matching is ``TargetEncoder`` with a "wh-IoU if the centre
  is in the cell" similarity and only each GT's best prediction positive.
* Box parameterisation: `keras_det.ops.grid_coders.PriorCellCoder`, one
  object handed to the target encoder and to the decoding: centre
  ``(i + σ(ty)) · stride``, size ``prior · (2 σ(th))²`` (YOLOv5's bounded
  size, stable under an IoU loss).
* Losses: ``box_loss`` = mean over positives of ``1 - CIoU`` (or GIoU) of
  the decoded boxes, ``objectness_loss`` = mean BCE on positives + mean BCE
  on negatives (predictions whose box overlaps a GT by more than
  ``ignore_threshold`` are not negatives), ``class_loss`` = sigmoid BCE on
  positives (sum over classes, mean over positives).
* Inference: score = σ(objectness) · σ(class), per-class NMS.

``YOLO(..., variant="v1")`` (the single class of earlier versions) builds a
`YOLOv1` with a ``DeprecationWarning``, and configs saved with
``variant="v1"`` load as `YOLOv1`.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.yolo_head import YOLOHead, YOLONeck
from keras_det.models.base import Detector
from keras_det.models.yolo_v1 import YOLOv1
from keras_det.ops import boxes as box_ops
from keras_det.ops.anchors import prior_grid  # noqa: F401  (re-exported: it lived here)
from keras_det.ops.grid_coders import PriorCellCoder
from keras_det.ops.image import image_hw
from keras_det.ops.matching import Matcher
from keras_det.ops.targets import TargetEncoder

VARIANTS = ("v1", "multiscale")

# YOLOv3's COCO priors (width, height) for 416×416 inputs, finest scale first.
YOLOV3_PRIORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)

_STRIDES = (8, 16, 32)

# Arguments of the former single class that only its v1 variant read (dropped
# from old multiscale configs), and those only the multiscale one read.
_V1_ONLY = ("grid_size", "boxes_per_cell", "fc_dim", "dropout", "lambda_coord", "lambda_noobj", "confidence_target",
            "feature_tap")
_MULTISCALE_ONLY = ("priors", "neck_filters", "box_loss", "ignore_threshold")


def priors_per_level(priors_wh, num_levels=3):
    """Splits ``[k, 2]`` (width, height) priors sorted by area into ``num_levels``
    groups, smallest first (e.g. the output of ``kmeans_anchors``)."""
    priors = np.asarray(priors_wh, np.float32).reshape(-1, 2)
    if len(priors) % num_levels:
        raise ValueError(f"{len(priors)} priors cannot be split into {num_levels} equal levels.")
    priors = priors[np.argsort(priors[:, 0] * priors[:, 1])]
    return tuple(tuple(tuple(float(v) for v in p) for p in group) for group in np.split(priors, num_levels))


def _centre(boxes):
    return (boxes[..., 0] + boxes[..., 2]) / 2.0, (boxes[..., 1] + boxes[..., 3]) / 2.0


def _legacy_v1(*args, **kwargs):
    """A `YOLOv1` from the arguments of ``YOLO(..., variant="v1")``."""
    kwargs = {k: v for k, v in kwargs.items() if k not in _MULTISCALE_ONLY and k != "variant"}
    args = args[:4]  # num_classes, backbone, backbone_weights, bounding_box_format: same positions
    return YOLOv1(*args, **kwargs)


@keras.saving.register_keras_serializable(package="keras_det")
class YOLO(Detector):
    """Multiscale YOLO detector on a fixed input size.

    Args:
        num_classes: object classes (0-based labels).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        variant: ``"multiscale"``; ``"v1"`` is deprecated and returns a
            `YOLOv1` built from the other arguments (use `YOLOv1`).
        image_size: ``(H, W)``; ``None``: 416×416.
        priors: one sequence of ``(width, height)`` pixels per scale (finest
            first); ``None``: YOLOv3's COCO priors scaled from 416 to ``image_size``.
        head_filters: channels of the head's 3×3 convolutions.
        neck_filters: channels of the FPN/PAN neck.
        box_loss: ``"ciou"`` or ``"giou"``.
        ignore_threshold: predictions whose box has IoU above it with a GT are
            not objectness negatives (0.5, YOLOv3).
        score_threshold, nms_iou_threshold, max_detections, pre_nms_topk:
            decoding (0.005, NMS 0.5, 100 detections, 1000 candidates).

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores [B, K]``,
    ``labels [B, K]`` int32 with -1 padding, ``num_detections [B]``).
    """

    loss_keys = ("box_loss", "objectness_loss", "class_loss")

    def __new__(cls, *args, **kwargs):
        variant = kwargs.get("variant", args[4] if len(args) > 4 else "multiscale")
        if variant == "v1":
            warnings.warn(
                "YOLO(variant='v1') is deprecated: YOLO v1 is its own class, keras_det.models.YOLOv1.",
                DeprecationWarning, stacklevel=2,
            )
            return _legacy_v1(*args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        variant="multiscale",
        image_size=None,
        priors=None,
        head_filters=256,
        neck_filters=128,
        box_loss="ciou",
        ignore_threshold=0.5,
        score_threshold=0.005,
        nms_iou_threshold=0.5,
        max_detections=100,
        pre_nms_topk=1000,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS} ('v1' builds a YOLOv1), got {variant!r}.")
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        if box_loss not in ("ciou", "giou"):
            raise ValueError(f"`box_loss` must be 'ciou' or 'giou', got {box_loss!r}.")
        self.num_classes = int(num_classes)
        self.image_size = (416, 416) if image_size is None else image_hw(image_size)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.box_loss_kind = box_loss
        self.ignore_threshold = float(ignore_threshold)
        height, width = self.image_size
        if priors is None:
            sy, sx = height / 416.0, width / 416.0
            priors = tuple(tuple((w * sx, h * sy) for w, h in level) for level in YOLOV3_PRIORS)
        priors = tuple(tuple((float(w), float(h)) for w, h in level) for level in priors)
        if len(priors) != 3:
            raise ValueError(f"`priors` needs one sequence per scale (3), got {len(priors)}.")
        self.priors = priors
        self.taps = ("C3", "C4", "C5")
        self.backbone = build_backbone(backbone, backbone_weights, (height, width, 3), taps=self.taps)
        self.decoder = DetectionDecoder(
            None, score_threshold, nms_iou_threshold, max_detections, pre_nms_topk,
            bounding_box_format=bounding_box_format, name="decoder",
        )
        self.neck = YOLONeck(neck_filters, name="neck")
        self.head = YOLOHead(self.num_classes, [len(p) for p in priors], head_filters, name="yolo_head")
        levels, strides, rows, cols, heights, widths = [], [], [], [], [], []
        # Map sizes from the backbone itself ('same' backbones ceil, VGG16 floors).
        map_sizes = [tuple(int(d) for d in self.backbone.output[t].shape[1:3]) for t in self.taps]
        self.feature_map_sizes = map_sizes
        for stride, level_priors, (fh, fw) in zip(_STRIDES, priors, map_sizes):
            levels.append(prior_grid((fh, fw), stride, level_priors).numpy())
            a = len(level_priors)
            r, c = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
            rows.append(np.repeat(r.reshape(-1), a))
            cols.append(np.repeat(c.reshape(-1), a))
            n = fh * fw * a
            strides.append(np.full(n, stride))
            heights.append(np.full(n, fh))
            widths.append(np.full(n, fw))
        self.prior_boxes = np.concatenate(levels).astype(np.float32)
        self.prior_stride = np.concatenate(strides).astype(np.float32)
        self.prior_row = np.concatenate(rows).astype(np.float32)
        self.prior_col = np.concatenate(cols).astype(np.float32)
        self.prior_map_h = np.concatenate(heights).astype(np.float32)
        self.prior_map_w = np.concatenate(widths).astype(np.float32)
        self.box_coder = PriorCellCoder(self.prior_stride)
        self.target_encoder = TargetEncoder(
            # No threshold is ever reached: positives are only each GT's best prediction.
            Matcher((2.0,), (0, 1), allow_low_quality_matches=True),
            None,
            self.box_coder,
            similarity_fn=self._prior_similarity,
        )

    @classmethod
    def from_config(cls, config):
        """Also reads configs of the former single class: ``variant="v1"`` → `YOLOv1`."""
        config = dict(config)
        variant = config.pop("variant", "multiscale")
        if variant == "v1":
            return YOLOv1.from_config({k: v for k, v in config.items() if k not in _MULTISCALE_ONLY})
        return super().from_config({k: v for k, v in config.items() if k not in _V1_ONLY})

    def _prior_similarity(self, priors, gt_boxes):
        """Width/height IoU of prior and GT when the GT centre is in the prior's cell, else 0."""
        cy, cx = _centre(gt_boxes)  # [B, M]
        stride = self.prior_stride[:, None]
        gi = tf.clip_by_value(tf.floor(cy[..., None, :] / stride), 0.0, self.prior_map_h[:, None] - 1.0)
        gj = tf.clip_by_value(tf.floor(cx[..., None, :] / stride), 0.0, self.prior_map_w[:, None] - 1.0)
        inside = (gi == self.prior_row[:, None]) & (gj == self.prior_col[:, None])  # [B, N, M]
        ph = priors[..., 2] - priors[..., 0]
        pw = priors[..., 3] - priors[..., 1]
        gh = gt_boxes[..., 2] - gt_boxes[..., 0]
        gw = gt_boxes[..., 3] - gt_boxes[..., 1]
        inter = tf.minimum(ph[..., :, None], gh[..., None, :]) * tf.minimum(pw[..., :, None], gw[..., None, :])
        union = (ph * pw)[..., :, None] + (gh * gw)[..., None, :] - inter
        return tf.where(inside, tf.math.divide_no_nan(inter, union), 0.0)

    # -- forward --------------------------------------------------------------
    def head_outputs(self, images, training=False):
        """Raw outputs ``[B, N, 5 + C]`` (``N`` priors, level by level)."""
        images = tf.cast(images, tf.float32)
        images = self.check_image_size(images)
        taps = self.backbone(images, training=training)
        return self.head(self.neck([taps[t] for t in self.taps], training=training), training=training)

    def decode(self, raw):
        """Raw ``[B, N, 5 + C]`` → ``(boxes [B, N, 4]`` absolute ``yxyx``,
        objectness logits ``[B, N]``, class logits ``[B, N, C])``."""
        boxes = self.box_coder.decode(tf.sigmoid(raw[..., :4]), tf.constant(self.prior_boxes))
        return boxes, raw[..., 4], raw[..., 5:]

    def call(self, images, training=False):
        boxes, objectness, class_logits = self.decode(self.head_outputs(images, training))
        scores = tf.sigmoid(objectness)[..., None] * tf.sigmoid(class_logits)
        return self.decoder(boxes, boxes, scores, tf.constant(self.image_size))

    # -- training -------------------------------------------------------------
    def targets(self, gt_boxes, gt_labels):
        """``TargetEncoder`` output for the priors (positives: each GT's best prior in its centre cell;
        ``box_targets`` are the `PriorCellCoder` values of the matched GT)."""
        return self.target_encoder(self.prior_boxes, gt_boxes, gt_labels)

    def loss_terms(self, raw, gt_boxes, gt_labels):
        """Box (1 - CIoU/GIoU), objectness and class losses (see the module docstring)."""
        t = self.targets(gt_boxes, gt_labels)
        positive = t["box_weights"]  # [B, N]
        num_pos = tf.reduce_sum(positive)
        boxes, objectness, class_logits = self.decode(raw)
        overlap = loss_ops.ciou if self.box_loss_kind == "ciou" else loss_ops.giou
        box_terms = 1.0 - overlap(boxes, tf.where(positive[..., None] > 0, t["matched_boxes"], boxes))
        box_loss = tf.reduce_sum(box_terms * positive) / loss_ops.replica_normalizer(num_pos)
        valid = gt_labels >= 0
        pairwise = tf.where(valid[:, None, :], box_ops.iou(tf.stop_gradient(boxes), gt_boxes), 0.0)
        # A zero column keeps the max defined for M == 0.
        best_iou = tf.reduce_max(tf.concat([pairwise, tf.zeros_like(positive)[..., None]], -1), axis=-1)
        negative = tf.cast((positive == 0) & (best_iou <= self.ignore_threshold), tf.float32)
        objectness_loss = loss_ops.binary_cross_entropy(objectness, positive, positive) + loss_ops.binary_cross_entropy(
            objectness, tf.zeros_like(positive), negative
        )
        onehot = tf.one_hot(tf.maximum(t["labels"] - 1, 0), self.num_classes)
        class_weights = tf.broadcast_to(positive[..., None], tf.shape(onehot))
        class_loss = loss_ops.binary_cross_entropy(class_logits, onehot, class_weights, normalizer=num_pos)
        return {"box_loss": box_loss, "objectness_loss": objectness_loss, "class_loss": class_loss}

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        return self.loss_terms(self.head_outputs(images, training), gt_boxes, gt_labels)
