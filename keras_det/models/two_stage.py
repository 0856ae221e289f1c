"""The two-stage detector, composed of parts (the idea of torchvision's
``GeneralizedRCNN`` and Model Garden's ``MaskRCNNModel``).

One forward pass::

    images ─ backbone ─ taps {"C4"} ─ [neck: FeaturePyramid → {"P3".."P6"}] ─ features (named maps)
    features ─ proposal source ─ proposals [B, P, 4] yxyx, valid [B, P]
                 RegionProposalNetwork (Faster / Mask R-CNN) or PrecomputedProposals (Fast R-CNN)
    features + proposals ─ RoIHeads ─ BoxRoIHead (RoIPooler → RoIBoxHead → DetectionDecoder)
                                   └─ MaskRoIHead / KeypointRoIHead on the detected boxes
    detections (yxyx) ─ bounding_box_format, once, at the boundary

Training runs the same parts: the proposal source returns its losses (the
RPN's) and its proposals; ``RoIHeads.compute_losses`` samples RoIs, returns
the box losses and hands the positive RoIs and their matched targets to the
mask / keypoint heads. Which maps the RPN and the poolers read is decided
once, at construction, by level names; the forward pass has no "FPN or not"
branch. ``RCNN`` shares the input handling and ``predict_step`` (its
second stage warps image windows instead of pooling shared features).
"""

import tensorflow as tf

from keras_det.models.base import Detector, unwrap
from keras_det.ops import boxes as box_ops


def split_inputs(inputs):
    """``(images, proposals or None)`` from a tensor, a dict or a tuple."""
    if isinstance(inputs, dict):
        return inputs["images"], inputs.get("proposals")
    if isinstance(inputs, (tuple, list)):
        return inputs[0], (inputs[1] if len(inputs) > 1 else None)
    return inputs, None


class ProposalInputs:
    """``predict_step`` of the models that may take ``proposals`` with the images (a mixin)."""

    def predict_step(self, data):
        data = unwrap(data)
        if isinstance(data, dict):
            data = {"images": data["images"], "proposals": data.get("proposals")}
        return self(data, training=False)


class TwoStageDetector(ProposalInputs, Detector):
    """Backbone → optional neck → proposal source → RoI heads (base of the R-CNN family).

    A subclass constructor builds the parts and calls ``compose``; ``call``,
    ``compute_detection_losses`` and ``predict_step`` are written here once.

    Attributes (set by ``compose``):
        backbone: ``keras.Model`` returning a dict of taps (``{"C4": ...}``).
        fpn: the neck (a ``FeaturePyramid``) or ``None``.
        proposal_source: ``RegionProposalNetwork`` or ``PrecomputedProposals``.
        roi_heads: ``RoIHeads``.
    """

    def compose(self, backbone, neck, proposal_source, roi_heads):
        """Sets the parts. The variable-holding layers are also model
        attributes under their names of the single-class models before the
        parts (``box_head``, ``rpn_head``, ``mask_head``, ``keypoint_head``),
        in that order: it keeps the variable order (optimizer state) and the
        weight paths of ``.keras`` files saved by those models."""
        self.backbone = backbone
        self.fpn = neck
        self.box_head = roi_heads.box.head
        if hasattr(proposal_source, "head"):
            self.rpn_head = proposal_source.head
        if roi_heads.mask is not None:
            self.mask_head = roi_heads.mask.head
        if roi_heads.keypoint is not None:
            self.keypoint_head = roi_heads.keypoint.head
        self.proposal_source = proposal_source
        self.roi_heads = roi_heads

    @property
    def decoder(self):
        """The box head's ``DetectionDecoder`` (boxes in absolute ``yxyx``)."""
        return self.roi_heads.box.decoder

    def features(self, images, training=False):
        """Named feature maps: the backbone's taps, or the neck's pyramid ``{"P3": ..., "P6": ...}``."""
        taps = self.backbone(images, training=training)
        return taps if self.fpn is None else self.fpn(taps)

    def to_output_format(self, detections, image_shape):
        """Detections with ``boxes`` converted from ``yxyx`` to ``bounding_box_format`` (padding rows stay 0)."""
        if self.bounding_box_format == "yxyx":
            return detections
        boxes = box_ops.convert_format(detections["boxes"], "yxyx", self.bounding_box_format, image_shape=image_shape)
        return {**detections, "boxes": tf.where(detections["labels"][..., None] >= 0, boxes, 0.0)}

    def call(self, inputs, training=False):
        images, proposals = split_inputs(inputs)
        images = tf.cast(images, tf.float32)
        image_shape = tf.shape(images)[1:3]
        features = self.features(images, training)
        proposals, valid = self.proposal_source(features, image_shape, proposals, training=False)
        detections = self.roi_heads(features, proposals, valid, image_shape, training=training)
        return self.to_output_format(detections, image_shape)

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, proposals=None, masks=None, keypoints=None, **extras):
        image_shape = tf.shape(images)[1:3]
        features = self.features(images, training)
        proposals, valid, losses = self.proposal_source.compute_losses(features, image_shape, gt_boxes, gt_labels, proposals)
        roi_losses, _ = self.roi_heads.compute_losses(
            features, proposals, valid, gt_boxes, gt_labels, training, masks=masks, keypoints=keypoints
        )
        return {**losses, **roi_losses}
