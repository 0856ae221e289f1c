"""Fast R-CNN (Girshick, 2015): shared features, RoI pooling of given proposals.

    images ─ backbone ─ C4 (stride 16) ─ RoIPooler (RoIPooling / RoIAlign) ◄─ proposals (a model input)
                                                └─ RoIBoxHead (2 FC) ─ class softmax + per-class deltas

The proposals are an input (e.g. precomputed selective-search boxes, see
``keras_det.region_proposals``): each batch element carries ``"proposals"``
``[B, P, 4]`` in the model's ``bounding_box_format``; rows of zero area are
padding. Training follows the paper: the GT boxes join the proposals, RoIs
with IoU ≥ 0.5 are foreground, those in [0.1, 0.5) background, 64 RoIs per
image with 25 % foreground, and the multitask loss (softmax + smooth-L1 on
the GT class's deltas, ``RCNN_BOX_WEIGHTS``) trains the head and the backbone
end to end.

The model is a composition (``keras_det.models.two_stage``): backbone,
optional FPN, ``PrecomputedProposals``, ``RoIHeads(BoxRoIHead)``.
"""

import keras

from keras_det.backbones import TAP_STRIDES, build_backbone, tap_stride
from keras_det.layers.fpn import FeaturePyramid
from keras_det.layers.roi_pooling import feature_level
from keras_det.layers.roi_heads import BoxRoIHead, RoIHeads
from keras_det.layers.rpn import PrecomputedProposals
from keras_det.models.two_stage import TwoStageDetector, split_inputs  # noqa: F401  (split_inputs: old import path)
from keras_det.ops.targets import gather_class_deltas, select_sampled  # noqa: F401  (old import path)

FPN_TAPS = ("C3", "C4", "C5")


def fpn_levels(fpn_taps):
    """``(rpn_levels, pool_levels)`` of a pyramid on the backbone taps ``fpn_taps``.

    ``("C3", "C4", "C5")`` gives P3-P6 for the RPN (P6: max-pooled P5) and
    P3-P5 for the RoI poolers; ``("C4", "C5")`` (torchvision's MobileNetV3
    320 FPN model: the last two stages) P4-P6 and P4-P5.

    Raises:
        ValueError: ``fpn_taps`` are not consecutive backbone taps.
    """
    taps = tuple(fpn_taps)
    numbers = [feature_level(t) for t in taps if t in TAP_STRIDES]
    if len(numbers) != len(taps) or len(taps) < 2 or numbers != list(range(numbers[0], numbers[0] + len(taps))):
        raise ValueError(f"`fpn_taps` must be two or more consecutive taps of {tuple(TAP_STRIDES)}, got {fpn_taps!r}.")
    pool = tuple(f"P{k}" for k in numbers)
    return pool + (f"P{numbers[-1] + 1}",), pool


def shared_features(backbone, backbone_weights, feature_tap, fpn, fpn_filters, fpn_taps=FPN_TAPS):
    """The feature part of a two-stage detector and the maps its stages read.

    Returns:
        ``(backbone, neck or None, rpn_levels, pool_levels)``: without FPN the
        backbone's ``feature_tap`` for both; with FPN, `fpn_levels` of
        ``fpn_taps`` (the RoI poolers assign RoIs by FPN's level rule).
    """
    tap_stride(feature_tap)  # a ValueError naming `feature_tap` for an unknown tap
    if fpn:
        rpn_levels, pool_levels = fpn_levels(fpn_taps)
        net = build_backbone(backbone, backbone_weights, (None, None, 3), taps=tuple(fpn_taps))
        return net, FeaturePyramid(fpn_filters, extra_levels=1, name="fpn"), rpn_levels, pool_levels
    net = build_backbone(backbone, backbone_weights, (None, None, 3), taps=(feature_tap,))
    return net, None, (feature_tap,), (feature_tap,)


def box_roi_head(num_classes, levels, roi_pooling, roi_output_size, fc_dims, class_agnostic, roi_batch_size_per_image,
                 roi_positive_fraction, roi_background_iou, score_threshold, nms_iou_threshold, max_detections):
    """The ``BoxRoIHead`` of a ``FastRCNN``-style model, from its argument names."""
    return BoxRoIHead(
        num_classes, levels, roi_pooling, roi_output_size, tuple(fc_dims), class_agnostic, roi_batch_size_per_image,
        roi_positive_fraction, roi_background_iou, score_threshold, nms_iou_threshold, max_detections,
        name="box_roi_head",
    )


@keras.saving.register_keras_serializable(package="keras_det")
class FastRCNN(TwoStageDetector):
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
        fpn, fpn_filters: pool from a Feature Pyramid (P3-P5) instead.
        fpn_taps: the backbone taps the pyramid is built on (``("C3", "C4",
            "C5")``; ``("C4", "C5")`` pools from P4-P5).

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
        fpn_taps=FPN_TAPS,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        net, neck, _, pool_levels = shared_features(backbone, backbone_weights, feature_tap, fpn, fpn_filters, fpn_taps)
        proposals = PrecomputedProposals(bounding_box_format, owner=type(self).__name__, name="proposals")
        box_head = box_roi_head(
            self.num_classes, pool_levels, roi_pooling, roi_output_size, fc_dims, class_agnostic, roi_batch_size_per_image,
            roi_positive_fraction, roi_background_iou, score_threshold, nms_iou_threshold, max_detections,
        )
        self.compose(net, neck, proposals, RoIHeads(box_head, name="roi_heads"))
