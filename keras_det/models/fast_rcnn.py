"""Fast R-CNN (Girshick, 2015): shared features, RoI pooling of given proposals.

    images ─ backbone ─ C4 (stride 16) ─ RoIPooling / RoIAlign ◄─ proposals (a model input)
                                                └─ RoIBoxHead (2 FC) ─ class softmax + per-class deltas

The proposals are an input (e.g. precomputed selective-search boxes, see
``keras_det.proposals``): each batch element carries ``"proposals"``
``[B, P, 4]`` in the model's ``bounding_box_format``; rows of zero area are
padding. Training follows the paper: the GT boxes join the proposals, RoIs
with IoU ≥ 0.5 are foreground, those in [0.1, 0.5) background, 64 RoIs per
image with 25 % foreground, and the multitask loss (softmax + smooth-L1 on
the GT class's deltas, weights 10/10/5/5) trains the head and the backbone
end to end.

``FasterRCNN`` extends this class with a region proposal network.
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone, tap_stride
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.heads import RoIBoxHead
from keras_det.layers.fpn import FeaturePyramid
from keras_det.layers.roi_pooling import MultiLevelRoIAlign, RoIAlign, RoIPooling
from keras_det.models.base import Detector, unwrap
from keras_det.ops import boxes as box_ops
from keras_det.ops.boxes import BoxCoder
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder


def make_roi_layer(kind, output_size, spatial_scale, sampling_ratio=2):
    """``RoIAlign`` (``"align"``) or ``RoIPooling`` (``"pool"``)."""
    if kind == "align":
        return RoIAlign(output_size=output_size, spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=True, name="roi_align")
    if kind == "pool":
        return RoIPooling(output_size=output_size, spatial_scale=spatial_scale, name="roi_pool")
    raise ValueError(f"`roi_pooling` must be 'align' or 'pool', got {kind!r}.")


def select_sampled(targets, num, by="class_weights"):
    """Gathers the (at most ``num``) sampled rows of RoI targets into fixed-size tensors.

    The rows kept are those of largest ``targets[by]`` (``[B, N]``):
    ``"class_weights"`` picks the sampled RoIs, ``"box_weights"`` the positives.

    Returns ``(indices [B, S], gathered targets)`` with ``S = min(num, N)``;
    rows beyond the sample have zero weights.
    """
    n = tf.shape(targets[by])[1]
    _, idx = tf.math.top_k(targets[by], k=tf.minimum(num, n))
    return idx, {k: tf.gather(v, idx, batch_dims=1) for k, v in targets.items()}


def gather_class_deltas(deltas, labels):
    """Per-class deltas ``[B, R, K, 4]`` → ``[B, R, 4]`` of class ``labels - 1``
    (background and ignored rows take class 0; their weight is 0)."""
    if deltas.shape[2] == 1:
        return deltas[:, :, 0, :]
    cls = tf.maximum(labels - 1, 0)
    return tf.gather(deltas, cls[..., None], batch_dims=2)[:, :, 0, :]


def split_inputs(inputs):
    """``(images, proposals or None)`` from a tensor, a dict or a tuple."""
    if isinstance(inputs, dict):
        return inputs["images"], inputs.get("proposals")
    if isinstance(inputs, (tuple, list)):
        return inputs[0], (inputs[1] if len(inputs) > 1 else None)
    return inputs, None


@keras.saving.register_keras_serializable(package="keras_det")
class FastRCNN(Detector):
    """Fast R-CNN detector on external proposals.

    Args:
        num_classes: object classes (0-based labels; background is added).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of boxes and proposals given to the model
            and of the boxes it returns.
        feature_tap: backbone stage to pool from (``"C4"``, stride 16).
        roi_pooling: ``"pool"`` (RoIPooling, the paper's) or ``"align"``.
        roi_output_size: pooled size (7).
        fc_dims: widths of the two FC layers.
        class_agnostic: one box per RoI instead of one per class.
        roi_batch_size_per_image, roi_positive_fraction: RoI sampling (64, 0.25).
        roi_background_iou: lower end of the background IoU band (0.1; RoIs
            below it are not sampled).
        score_threshold, nms_iou_threshold, max_detections: decoding.

    Call: ``{"images": [B, H, W, 3] float 0..255, "proposals": [B, P, 4]}``
    (or ``(images, proposals)``) → prediction dict.
    """

    loss_keys = ("roi_cls_loss", "roi_box_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        feature_tap="C4",
        roi_pooling="align",
        roi_output_size=7,
        fc_dims=(1024, 1024),
        class_agnostic=False,
        roi_batch_size_per_image=64,
        roi_positive_fraction=0.25,
        roi_background_iou=0.1,
        score_threshold=0.05,
        nms_iou_threshold=0.5,
        max_detections=100,
        fpn=False,
        fpn_filters=256,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.feature_tap = feature_tap
        self.stride = tap_stride(feature_tap)
        self.config_args = {
            "num_classes": self.num_classes,
            "backbone": self.backbone_name,
            # Weights come back from the saved file, never from a re-download.
            "backbone_weights": None,
            "bounding_box_format": bounding_box_format,
            "feature_tap": feature_tap,
            "roi_pooling": roi_pooling,
            "roi_output_size": roi_output_size,
            "fc_dims": tuple(fc_dims),
            "class_agnostic": class_agnostic,
            "roi_batch_size_per_image": roi_batch_size_per_image,
            "roi_positive_fraction": roi_positive_fraction,
            "roi_background_iou": roi_background_iou,
            "score_threshold": score_threshold,
            "nms_iou_threshold": nms_iou_threshold,
            "max_detections": max_detections,
            "fpn": fpn,
            "fpn_filters": fpn_filters,
        }
        self.use_fpn = bool(fpn)
        if self.use_fpn:
            # FPN: P3-P5 from C3-C5 (+ P6 for the RPN); RoIs pooled from P3-P5
            # by the FPN level rule.
            self.backbone = build_backbone(backbone, backbone_weights, (None, None, 3), taps=("C3", "C4", "C5"))
            self.fpn = FeaturePyramid(fpn_filters, extra_levels=1, name="fpn")
            self.roi_layer = MultiLevelRoIAlign((roi_output_size, roi_output_size), sampling_ratio=2, name="roi_align")
        else:
            self.backbone = build_backbone(backbone, backbone_weights, (None, None, 3), taps=(feature_tap,))
            self.roi_layer = make_roi_layer(roi_pooling, (roi_output_size, roi_output_size), 1.0 / self.stride)
        self.box_head = RoIBoxHead(self.num_classes, fc_dims, class_agnostic, name="box_head")
        self.decoder = DetectionDecoder(
            (10.0, 10.0, 5.0, 5.0), score_threshold, nms_iou_threshold, max_detections,
            bounding_box_format=bounding_box_format, name="decoder",
        )
        self.roi_batch_size_per_image = int(roi_batch_size_per_image)
        if roi_background_iou > 0:
            matcher = Matcher((roi_background_iou, 0.5), (-1, 0, 1))
        else:
            matcher = Matcher((0.5,), (0, 1))
        self.roi_targets = TargetEncoder(
            matcher, BalancedSampler(roi_batch_size_per_image, roi_positive_fraction), BoxCoder((10.0, 10.0, 5.0, 5.0))
        )

    # -- shared pieces ------------------------------------------------------
    def features(self, images, training):
        """The tap's map, or with FPN the pyramid dict ``{"P3": ..., "P6": ...}``."""
        taps = self.backbone(images, training=training)
        if self.use_fpn:
            return self.fpn(taps)
        return taps[self.feature_tap]

    def pooling_features(self, features):
        """What the RoI layers pool from: the map, or pyramid levels P3-P5."""
        if self.use_fpn:
            return {k: v for k, v in features.items() if k in ("P3", "P4", "P5")}
        return features

    def roi_head(self, features, rois, training):
        return self.box_head(self.roi_layer(self.pooling_features(features), rois), training=training)

    def detect(self, features, images, proposals, proposal_valid, training=False):
        """Runs the head on ``[B, P, 4]`` yxyx proposals and decodes detections."""
        logits, deltas = self.roi_head(features, proposals, training)
        probs = tf.nn.softmax(logits, axis=-1)[..., 1:]
        probs = tf.where(proposal_valid[..., None], probs, 0.0)
        return self.decoder(proposals, deltas, probs, tf.shape(images)[1:3])

    def roi_targets_for(self, proposals, proposal_valid, gt_boxes, gt_labels):
        """Samples RoIs (proposals + GT boxes) and their targets, fixed size ``S``."""
        rois = tf.concat([proposals, gt_boxes], axis=1)
        valid = tf.concat([proposal_valid, gt_labels >= 0], axis=1)
        t = self.roi_targets(rois, gt_boxes, gt_labels, anchor_valid=valid)
        idx, sampled = select_sampled(t, self.roi_batch_size_per_image)
        return tf.gather(rois, idx, batch_dims=1), sampled

    def head_losses(self, logits, box_deltas, t):
        """Softmax + smooth-L1 (GT class deltas) over the sampled RoIs ``t``."""
        sampled = tf.reduce_sum(t["class_weights"])
        return {
            "roi_cls_loss": loss_ops.softmax_cross_entropy(logits, t["labels"], t["class_weights"]),
            "roi_box_loss": loss_ops.box_regression_loss(
                gather_class_deltas(box_deltas, t["labels"]), t["box_targets"], t["box_weights"], sampled
            ),
        }

    def roi_losses(self, features, proposals, proposal_valid, gt_boxes, gt_labels, training):
        rois, t = self.roi_targets_for(proposals, proposal_valid, gt_boxes, gt_labels)
        logits, box_deltas = self.roi_head(features, rois, training)
        return self.head_losses(logits, box_deltas, t)

    def _proposals(self, images, proposals):
        if proposals is None:
            raise ValueError(f"{type(self).__name__} needs `proposals` [B, P, 4] with the images (a model input).")
        proposals = box_ops.convert_format(proposals, self.bounding_box_format, "yxyx", image_shape=tf.shape(images)[1:3])
        valid = box_ops.area(proposals) > 0
        return tf.where(valid[..., None], proposals, 0.0), valid

    # -- keras entry points ---------------------------------------------------
    def call(self, inputs, training=False):
        images, proposals = split_inputs(inputs)
        images = tf.cast(images, tf.float32)
        proposals, valid = self._proposals(images, proposals)
        return self.detect(self.features(images, training), images, proposals, valid, training)

    def predict_step(self, data):
        data = unwrap(data)
        if isinstance(data, dict):
            data = {"images": data["images"], "proposals": data.get("proposals")}
        return self(data, training=False)

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, proposals=None, **extras):
        proposals, valid = self._proposals(images, proposals)
        features = self.features(images, training)
        return self.roi_losses(features, proposals, valid, gt_boxes, gt_labels, training)

