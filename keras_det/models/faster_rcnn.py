"""Faster R-CNN (Ren et al., 2015): RPN + Fast R-CNN head on shared features.

    images ─ backbone ─ C4 (stride 16) ─┬─ RegionProposalNetwork (RPNHead, anchors, ProposalGenerator) ─┐
                                        └──────────────── RoIPooler ◄─ proposals ───────────────────────┘
                                                               └─ RoIBoxHead ─ DetectionDecoder

Training is joint ("approximate joint training": proposals are not
differentiated through) with four losses in one ``train_step``, each shown
by ``fit()``: ``rpn_cls_loss``, ``rpn_box_loss``, ``roi_cls_loss``,
``roi_box_loss``. Defaults follow the paper and torchvision's reference:

* RPN: 3×3 conv (256 filters), 9 anchors per cell (sizes 128/256/512, ratios
  1:2, 1:1, 2:1), IoU ≥ 0.7 positive / < 0.3 negative plus each GT's best
  anchor, 256 anchors per image with ≤ 50 % positives, ``UNIT_BOX_WEIGHTS``.
* Proposals: top 2000 → NMS 0.7 → 2000 for training; 1000 → 1000 at test.
* RoI head: GT boxes added to the proposals, IoU ≥ 0.5 foreground, 512 RoIs
  per image with ≤ 25 % foreground, 7×7 RoIAlign (or RoIPooling), two FC
  layers, per-class deltas with ``RCNN_BOX_WEIGHTS`` (10, 10, 5, 5).
* Inference: score > 0.05, per-class NMS 0.5, 100 detections.

For small images (the embedded ``shapes`` set), pass smaller
``anchor_sizes`` (e.g. 16/32/64) and counts. The model is a composition
(``keras_det.models.two_stage``): backbone, optional FPN,
``RegionProposalNetwork``, ``RoIHeads(BoxRoIHead)``.
"""

import inspect

import keras

from keras_det.layers.roi_heads import RoIHeads
from keras_det.layers.rpn import RegionProposalNetwork
from keras_det.models.fast_rcnn import FastRCNN, box_roi_head, shared_features
from keras_det.models.two_stage import TwoStageDetector

# The FastRCNN arguments FasterRCNN takes through **kwargs, with FastRCNN's defaults.
_ROI_DEFAULTS = {
    k: p.default for k, p in inspect.signature(FastRCNN.__init__).parameters.items()
    if k in ("roi_pooling", "roi_output_size", "fc_dims", "class_agnostic", "roi_positive_fraction",
             "score_threshold", "nms_iou_threshold", "max_detections", "fpn", "fpn_filters", "fpn_taps")
}


@keras.saving.register_keras_serializable(package="keras_det")
class FasterRCNN(TwoStageDetector):
    """Faster R-CNN detector: Fast R-CNN's RoI head on proposals from an RPN.

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
            P3-P5 by the FPN level rule; ``fpn_taps=("C4", "C5")``: P4-P6 and
            P4-P5). ``feature_tap`` is then unused.
        **kwargs: the RoI head and decoding arguments of ``FastRCNN``
            (``roi_pooling="align"``, ``roi_output_size``, ``fc_dims``,
            ``class_agnostic``, ``roi_batch_size_per_image=512``,
            ``roi_positive_fraction=0.25``, ``roi_background_iou=0.0``,
            ``score_threshold``, ``nms_iou_threshold``, ``max_detections``,
            ``fpn_filters``, ``fpn_taps``).

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
        roi_args = {k: kwargs.pop(k, default) for k, default in _ROI_DEFAULTS.items()}
        fpn, fpn_filters, fpn_taps = roi_args.pop("fpn"), roi_args.pop("fpn_filters"), roi_args.pop("fpn_taps")
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        net, neck, rpn_levels, pool_levels = shared_features(
            backbone, backbone_weights, feature_tap, fpn, fpn_filters, fpn_taps
        )
        # Built in this order (box head, then RPN) so that a seed gives the initial weights it gave before the parts.
        box_head = box_roi_head(self.num_classes, pool_levels, roi_batch_size_per_image=roi_batch_size_per_image,
                                roi_background_iou=roi_background_iou, **roi_args)
        roi_heads = RoIHeads(box_head, name="roi_heads")
        rpn = RegionProposalNetwork(
            rpn_levels, anchor_sizes, aspect_ratios, rpn_filters, rpn_batch_size_per_image, rpn_positive_fraction,
            rpn_pre_nms_topk_train, rpn_post_nms_topk_train, rpn_pre_nms_topk_test, rpn_post_nms_topk_test,
            rpn_nms_iou_threshold, name="rpn_stage",
        )
        self.compose(net, neck, rpn, roi_heads)

    @property
    def rpn(self):
        """The ``RegionProposalNetwork`` (the proposal source)."""
        return self.proposal_source
