"""Faster R-CNN (Ren et al., 2015): RPN + Fast R-CNN head on shared features.

    images ─ backbone ─ C4 (stride 16) ─┬─ RPNHead ─ objectness, deltas ─ ProposalGenerator ─┐
                                        └─────────────── RoIAlign / RoIPooling ◄─ proposals ─┘
                                                               └─ RoIBoxHead ─ DetectionDecoder

Training is joint ("approximate joint training": proposals are not
differentiated through) with four losses in one ``train_step``, each shown
by ``fit()``: ``rpn_cls_loss``, ``rpn_box_loss``, ``roi_cls_loss``,
``roi_box_loss``. Defaults follow the paper and torchvision's reference:

* RPN: 3×3 conv (256 filters), 9 anchors per cell (sizes 128/256/512, ratios
  1:2, 1:1, 2:1), IoU ≥ 0.7 positive / < 0.3 negative plus each GT's best
  anchor, 256 anchors per image with ≤ 50 % positives, deltas weights 1.
* Proposals: top 2000 → NMS 0.7 → 2000 for training; 1000 → 1000 at test.
* RoI head: GT boxes added to the proposals, IoU ≥ 0.5 foreground, 512 RoIs
  per image with ≤ 25 % foreground, 7×7 RoIAlign (or RoIPooling), two FC
  layers, per-class deltas with weights (10, 10, 5, 5).
* Inference: score > 0.05, per-class NMS 0.5, 100 detections.

For small images (the embedded ``shapes`` set), pass smaller
``anchor_sizes`` (e.g. 16/32/64) and counts.
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.layers.rpn import AnchorGenerator, ProposalGenerator, RPNHead
from keras_det.models.fast_rcnn import FastRCNN
from keras_det.ops.boxes import BoxCoder
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder


@keras.saving.register_keras_serializable(package="keras_det")
class FasterRCNN(FastRCNN):
    """Faster R-CNN detector: ``FastRCNN`` whose proposals come from an RPN.

    Args:
        num_classes: object classes (0-based labels; background is added).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        feature_tap: backbone stage for the RPN and RoI pooling (``"C4"``:
            stride 16 as in the paper).
        anchor_sizes, aspect_ratios: anchors per cell (3 × 3 = 9).
        rpn_filters: width of the RPN's 3×3 conv (256 for ZF/small nets, 512 for VGG16).
        rpn_batch_size_per_image, rpn_positive_fraction: RPN sampling (256, 0.5).
        rpn_pre_nms_topk_train/test, rpn_post_nms_topk_train/test: proposal counts.
        rpn_nms_iou_threshold: proposal NMS (0.7).
        fpn: use a Feature Pyramid (P3-P6 for the RPN with one anchor size per
            level, e.g. ``anchor_sizes=(32, 64, 128, 256)``; RoIs pooled from
            P3-P5 by ``MultiLevelRoIAlign``'s level rule). ``feature_tap`` is
            then unused.
        **kwargs: the RoI head and decoding arguments of ``FastRCNN``
            (``roi_pooling="align"``, ``roi_output_size``, ``fc_dims``,
            ``class_agnostic``, ``roi_batch_size_per_image=512``,
            ``roi_positive_fraction=0.25``, ``roi_background_iou=0.0``,
            ``score_threshold``, ``nms_iou_threshold``, ``max_detections``).

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores``, ``labels``,
    ``num_detections``).
    """

    loss_keys = ("rpn_cls_loss", "rpn_box_loss", "roi_cls_loss", "roi_box_loss")
    RPN_LEVELS = ("P3", "P4", "P5", "P6")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        feature_tap="C4",
        anchor_sizes=(128, 256, 512),
        aspect_ratios=(0.5, 1.0, 2.0),
        rpn_filters=256,
        rpn_batch_size_per_image=256,
        rpn_positive_fraction=0.5,
        rpn_pre_nms_topk_train=2000,
        rpn_post_nms_topk_train=2000,
        rpn_pre_nms_topk_test=1000,
        rpn_post_nms_topk_test=1000,
        rpn_nms_iou_threshold=0.7,
        roi_batch_size_per_image=512,
        roi_background_iou=0.0,
        **kwargs,
    ):
        super().__init__(
            num_classes,
            backbone=backbone,
            backbone_weights=backbone_weights,
            bounding_box_format=bounding_box_format,
            feature_tap=feature_tap,
            roi_batch_size_per_image=roi_batch_size_per_image,
            roi_background_iou=roi_background_iou,
            **kwargs,
        )
        self.config_args.update(
            {
                "anchor_sizes": tuple(anchor_sizes),
                "aspect_ratios": tuple(aspect_ratios),
                "rpn_filters": rpn_filters,
                "rpn_batch_size_per_image": rpn_batch_size_per_image,
                "rpn_positive_fraction": rpn_positive_fraction,
                "rpn_pre_nms_topk_train": rpn_pre_nms_topk_train,
                "rpn_post_nms_topk_train": rpn_post_nms_topk_train,
                "rpn_pre_nms_topk_test": rpn_pre_nms_topk_test,
                "rpn_post_nms_topk_test": rpn_post_nms_topk_test,
                "rpn_nms_iou_threshold": rpn_nms_iou_threshold,
            }
        )
        if self.use_fpn:
            # One anchor size per pyramid level P3-P6 (strides 8-64), as in FPN.
            if len(anchor_sizes) != len(self.RPN_LEVELS):
                raise ValueError(
                    f"With fpn=True, `anchor_sizes` needs one size per level {self.RPN_LEVELS}, got {tuple(anchor_sizes)}."
                )
            self.anchor_generators = {
                level: AnchorGenerator((size,), aspect_ratios, 2 ** int(level[1:]), name=f"anchors_{level}")
                for level, size in zip(self.RPN_LEVELS, anchor_sizes)
            }
            per_location = len(aspect_ratios)
        else:
            self.anchor_generator = AnchorGenerator(anchor_sizes, aspect_ratios, self.stride, name="anchors")
            per_location = self.anchor_generator.num_anchors_per_location
        self.rpn_head = RPNHead(per_location, rpn_filters, name="rpn")
        self.proposal_generator = ProposalGenerator(
            rpn_pre_nms_topk_train, rpn_post_nms_topk_train, rpn_pre_nms_topk_test, rpn_post_nms_topk_test,
            rpn_nms_iou_threshold, name="proposals",
        )
        self.rpn_targets = TargetEncoder(
            Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True),
            BalancedSampler(rpn_batch_size_per_image, rpn_positive_fraction),
            BoxCoder((1.0, 1.0, 1.0, 1.0)),
        )

    def rpn(self, features, images, training):
        """``(objectness, deltas, anchors, proposals, proposal_valid)``."""
        if self.use_fpn:
            # The shared head runs on every level; levels are concatenated
            # (proposal selection then ranks all levels together).
            outputs = [self.rpn_head(features[level]) for level in self.RPN_LEVELS]
            objectness = tf.concat([o for o, _ in outputs], axis=1)
            deltas = tf.concat([d for _, d in outputs], axis=1)
            anchors = tf.concat([self.anchor_generators[level](features[level]) for level in self.RPN_LEVELS], axis=0)
        else:
            objectness, deltas = self.rpn_head(features)
            anchors = self.anchor_generator(features)
        proposals, scores = self.proposal_generator(
            objectness, deltas, anchors, tf.shape(images)[1:3], training=training
        )
        return objectness, deltas, anchors, proposals, scores >= 0.0

    def call(self, inputs, training=False):
        images = tf.cast(inputs["images"] if isinstance(inputs, dict) else inputs, tf.float32)
        features = self.features(images, training)
        *_, proposals, valid = self.rpn(features, images, training=False)
        return self.detect(features, images, proposals, valid, training)

    def rpn_losses(self, objectness, deltas, anchors, gt_boxes, gt_labels):
        t = self.rpn_targets(anchors, gt_boxes, gt_labels)
        sampled = tf.reduce_sum(t["class_weights"])
        return {
            "rpn_cls_loss": loss_ops.binary_cross_entropy(objectness, t["labels"], t["class_weights"]),
            "rpn_box_loss": loss_ops.box_regression_loss(deltas, t["box_targets"], t["box_weights"], sampled),
        }

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        features = self.features(images, training)
        objectness, deltas, anchors, proposals, valid = self.rpn(features, images, training=True)
        losses = self.rpn_losses(objectness, deltas, anchors, gt_boxes, gt_labels)
        losses.update(self.roi_losses(features, proposals, valid, gt_boxes, gt_labels, training))
        return losses
