"""SSD: Single Shot MultiBox Detector (Liu et al., 2016), and SSDLite.

    images ─ backbone ─ C3 ─────────────────────────────┐
                      ├ C4 ─────────────────────────────┤
                      └ C5 ─ extra ─ extra ─ … ─ (1×1) ─┴─ SSDHead ─ logits, deltas
                                                             └ DetectionDecoder (default boxes)

Every feature map predicts, for each of its default boxes, ``C + 1`` class
logits and 4 offsets. Defaults follow the paper:

* Feature maps: the backbone taps (``C3, C4, C5`` by default), then extra
  blocks (1×1 conv, 3×3 stride-2 conv) that halve the map until it is 1×1; a
  3×3 map is reduced to 1×1 by a 'valid' 3×3 conv, as SSD300's last layer.
  With MobileNetV2 at 300×300 the maps are 38, 19, 10, 5, 3, 1 — SSD300's
  layout (8,732 default boxes); at 128×128: 16, 8, 4, 2, 1.
* Default boxes: ``keras_det.ops.anchors.ssd_default_boxes``, scales 0.2 …
  0.9, width/height ratios {1, 2, 1/2} (4 boxes) on the first and the last two
  maps and {1, 2, 1/2, 3, 1/3} (6 boxes) on the others (SSD300's choice).
* Matching: each default box to the GT with the highest IoU if IoU ≥ 0.5, and
  each GT's best default box (``Matcher(allow_low_quality_matches=True)``).
* Loss: smooth-L1 (β = 1) on ``BoxCoder`` deltas with weights (10, 10, 5, 5)
  (the variances 0.1 / 0.2) + softmax cross-entropy on the positives and the
  hardest negatives, 3 per positive (``losses.hard_negative_mask``); both
  summed and divided by the number of positives in the batch.
* Inference: softmax, score > 0.01, per-class NMS 0.45, 200 detections.

The extra blocks use BatchNorm + ReLU (the paper has ReLU only; BN lets the
tests train from scratch). ``head="ssdlite"`` makes the head and the extra
blocks depthwise-separable (SSDLite, Sandler et al., 2018); ``extra_kind``
sets the extra blocks apart from the head (SSD-MobileNetV2: 3×3-conv head,
depthwise-separable extras).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.ssd_extra import build_extra_layers
from keras_det.layers.ssd_head import HEAD_KINDS, SSDHead
from keras_det.models.base import Detector
from keras_det.ops import anchors as anchor_ops
from keras_det.ops.boxes import RCNN_BOX_WEIGHTS, BoxCoder
from keras_det.ops.image import image_hw
from keras_det.ops.matching import Matcher
from keras_det.ops.targets import TargetEncoder

SSD_BOX_WEIGHTS = RCNN_BOX_WEIGHTS


def default_aspect_ratios(num_levels):
    """SSD300's per-level width/height ratios generalised to ``num_levels`` maps.

    4 boxes (ratios 1, 2, 1/2) on the first and the last two maps, 6 boxes
    (1, 2, 1/2, 3, 1/3) on the others; with fewer than 4 maps all get 4 boxes.
    """
    four = (1.0, 2.0, 0.5)
    six = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    if num_levels < 4:
        return [four] * num_levels
    return [four] + [six] * (num_levels - 3) + [four, four]


def boxes_per_cell(ratios):
    """Default boxes per cell for one level's ratios (an extra box for ratio 1)."""
    return len(ratios) + (1 if 1.0 in [float(r) for r in ratios] else 0)


@keras.saving.register_keras_serializable(package="keras_det")
class SSD(Detector):
    """SSD / SSDLite detector on a fixed input size.

    Args:
        num_classes: object classes (0-based labels; background is added).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        image_size: ``(H, W)``; fixed because the default boxes are. Inputs
            must have this size (resize/pad them in the data pipeline).
        feature_taps: backbone maps that predict (``("C3", "C4", "C5")`` or
            ``("C4", "C5")``); extra maps follow the last one.
        extra_filters: channels of the extra maps (int or one per map).
        num_extra_levels: number of extra maps; ``None``: until 1×1.
        min_scale, max_scale: default-box scales of the first / last map.
        aspect_ratios: width/height ratios: one sequence for all maps, a list
            with one sequence per map, or ``None`` for ``default_aspect_ratios``.
        head: ``"ssd"`` (3×3 conv predictors) or ``"ssdlite"``.
        extra_kind: ``"ssd"`` (3×3 convs) or ``"ssdlite"`` (depthwise-separable)
            extra blocks; ``None``: as ``head``. SSD-MobileNetV2 (the TF Object
            Detection API's ``ssd_mobilenet_v2``, ``use_depthwise: true``) has
            depthwise-separable extras under a 3×3-conv head.
        iou_threshold: matching threshold (0.5).
        neg_pos_ratio: hard negatives per positive (3).
        score_threshold, nms_iou_threshold, max_detections, pre_nms_topk:
            decoding (0.01, 0.45, 200, 1000).

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores [B, K]``,
    ``labels [B, K]`` int32 with -1 padding, ``num_detections [B]``).

    Attributes:
        feature_map_sizes: ``[(h, w), ...]`` of the predicting maps.
        default_boxes: numpy ``[N, 4]`` absolute ``yxyx`` default boxes.
        num_anchors_per_level: default boxes per cell for each map.
    """

    loss_keys = ("cls_loss", "box_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        image_size=(300, 300),
        feature_taps=("C3", "C4", "C5"),
        extra_filters=256,
        num_extra_levels=None,
        min_scale=0.2,
        max_scale=0.9,
        aspect_ratios=None,
        head="ssd",
        extra_kind=None,
        iou_threshold=0.5,
        neg_pos_ratio=3,
        score_threshold=0.01,
        nms_iou_threshold=0.45,
        max_detections=200,
        pre_nms_topk=1000,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        if head not in HEAD_KINDS:
            raise ValueError(f"`head` must be one of {HEAD_KINDS}, got {head!r}.")
        extra_kind = head if extra_kind is None else extra_kind
        if extra_kind not in HEAD_KINDS:
            raise ValueError(f"`extra_kind` must be one of {HEAD_KINDS} or None, got {extra_kind!r}.")
        self.num_classes = int(num_classes)
        self.image_size = image_hw(image_size)
        self.feature_taps = tuple(feature_taps)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.neg_pos_ratio = int(neg_pos_ratio)
        height, width = self.image_size
        self.backbone = build_backbone(backbone, backbone_weights, (height, width, 3), taps=self.feature_taps)
        tap_shapes = [tuple(self.backbone.output[t].shape[1:]) for t in self.feature_taps]
        self.extras = build_extra_layers(tap_shapes[-1], extra_filters, num_extra_levels, extra_kind)
        extra_shapes = [tuple(o.shape[1:]) for o in self.extras.outputs]
        self.feature_map_sizes = [(int(s[0]), int(s[1])) for s in tap_shapes + extra_shapes]
        num_levels = len(self.feature_map_sizes)

        if aspect_ratios is None:
            ratios = default_aspect_ratios(num_levels)
        elif isinstance(aspect_ratios[0], (list, tuple)):
            ratios = [tuple(float(r) for r in level) for level in aspect_ratios]
        else:
            ratios = [tuple(float(r) for r in aspect_ratios)] * num_levels
        if len(ratios) != num_levels:
            raise ValueError(f"`aspect_ratios` has {len(ratios)} entries for {num_levels} feature maps {self.feature_map_sizes}.")
        self.num_anchors_per_level = [boxes_per_cell(r) for r in ratios]
        relative = anchor_ops.ssd_default_boxes(self.feature_map_sizes, min_scale, max_scale, ratios).numpy()
        self.default_boxes = relative * np.array([height, width, height, width], np.float32)

        self.head = SSDHead(self.num_classes, self.num_anchors_per_level, kind=head, name="ssd_head")
        self.decoder = DetectionDecoder(
            SSD_BOX_WEIGHTS, score_threshold, nms_iou_threshold, max_detections, pre_nms_topk,
            bounding_box_format=bounding_box_format, name="decoder",
        )
        self.target_encoder = TargetEncoder(
            Matcher((float(iou_threshold),), (0, 1), allow_low_quality_matches=True),
            None,
            BoxCoder(SSD_BOX_WEIGHTS),
        )

    # -- forward --------------------------------------------------------------
    def head_outputs(self, images, training=False):
        """Raw head outputs: ``(logits [B, N, C + 1], deltas [B, N, 4])``."""
        images = tf.cast(images, tf.float32)
        images = self.check_image_size(images)
        taps = self.backbone(images, training=training)
        maps = [taps[t] for t in self.feature_taps]
        extra = self.extras(maps[-1], training=training)
        if not isinstance(extra, (list, tuple)):
            extra = [extra]
        return self.head(maps + list(extra), training=training)

    def call(self, images, training=False):
        logits, deltas = self.head_outputs(images, training)
        probs = tf.nn.softmax(logits, axis=-1)[..., 1:]
        return self.decoder(self.default_boxes, deltas, probs, tf.constant(self.image_size))

    # -- training -------------------------------------------------------------
    def ssd_losses(self, logits, deltas, gt_boxes, gt_labels, return_masks=False):
        """SSD's multibox loss from head outputs.

        Args:
            logits: ``[B, N, C + 1]``; deltas: ``[B, N, 4]``.
            gt_boxes: ``[B, M, 4]`` absolute ``yxyx``; gt_labels: ``[B, M]`` (-1 padding).
            return_masks: also return the bool ``positive`` / ``hard_negative`` masks ``[B, N]``.

        Returns:
            dict ``cls_loss``, ``box_loss`` (each summed and divided by the
            number of positives in the batch, at least 1), plus the masks if asked.
        """
        t = self.target_encoder(self.default_boxes, gt_boxes, gt_labels)
        positive = t["labels"] > 0
        negative = tf.equal(t["labels"], 0)
        background_loss = tf.stop_gradient(-tf.nn.log_softmax(logits, axis=-1)[..., 0])
        hard_negative = loss_ops.hard_negative_mask(background_loss, positive, negative, ratio=self.neg_pos_ratio)
        num_pos = tf.reduce_sum(tf.cast(positive, tf.float32))
        selected = tf.cast(positive | hard_negative, tf.float32)
        losses = {
            "cls_loss": loss_ops.softmax_cross_entropy(logits, t["labels"], selected, normalizer=num_pos),
            "box_loss": loss_ops.box_regression_loss(deltas, t["box_targets"], t["box_weights"], num_pos, beta=1.0),
        }
        if return_masks:
            losses["positive"] = positive
            losses["hard_negative"] = hard_negative
        return losses

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        logits, deltas = self.head_outputs(images, training)
        return self.ssd_losses(logits, deltas, gt_boxes, gt_labels)
