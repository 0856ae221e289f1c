"""Sliding-window detection: the seed's baseline, done fully convolutionally.

The naive detector crops every window (several sizes and aspect ratios, at
every ``stride`` pixels), resizes it and runs a CNN classifier with an extra
"background" class on it. ``count_windows`` shows why that is expensive.

``SlidingWindowDetector`` computes the same thing at once: the backbone runs
once over the image, and for each window shape a convolution whose kernel
covers the window's footprint on the stride-``s`` feature map
(``≈ h/s × w/s`` cells) classifies *every* window position in one pass — a
k×k conv "classifier" over the feature map is a classifier applied to all
k×k windows. Several window shapes = several conv kernels::

    images ─ backbone ─ C4 (stride 16) ─┬─ conv (k₁×k₁) ─ 1×1 → C+1 logits (+ 4 deltas)   window shape 1
                                        ├─ conv (k₂×k₃) ─ 1×1 → …                           window shape 2
                                        └─ …
                              → scores per (window position, shape) ─ DetectionDecoder (NMS)

The box of a detection is the window's footprint (``grid_anchors`` with the
window sizes and ratios: height·width = size², height/width = ratio),
optionally refined by a regression (``box_regression=True``, Faster R-CNN
deltas with weights 10, 10, 5, 5). Training targets: a window is positive for
a class when its IoU with a GT of that class is ≥ 0.5 (``TargetEncoder`` with
the windows as anchors), background otherwise; 256 windows per image with
≤ 25 % positives are sampled (R-CNN's classifier recipe).
"""

import math

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone, tap_stride
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.window_classifier import WindowClassifier
from keras_det.models.base import Detector
from keras_det.ops import anchors as anchor_ops
from keras_det.ops.boxes import RCNN_BOX_WEIGHTS, BoxCoder
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder

_BOX_WEIGHTS = RCNN_BOX_WEIGHTS


def window_shapes(window_sizes, aspect_ratios):
    """``(height, width)`` of each window, in the order of ``grid_anchors``
    (aspect-ratio major, size minor); ``ratio = height / width``, area ``size²``."""
    return [(s * math.sqrt(r), s / math.sqrt(r)) for r in aspect_ratios for s in window_sizes]


def count_windows(image_size, window_sizes, aspect_ratios, stride):
    """How many windows a naive sliding-window detector classifies in one image.

    Each window of ``h × w`` pixels (``h = size·√ratio``, ``w = size/√ratio``,
    rounded) slides at ``stride`` pixels and must lie inside the image:
    ``(⌊(H - h)/stride⌋ + 1) · (⌊(W - w)/stride⌋ + 1)`` positions; windows
    larger than the image are skipped.

    Why it is expensive: a 600×800 image with 3 sizes (64, 128, 256) × 3
    ratios (1:2, 1:1, 2:1) at stride 8 gives

    >>> count_windows((600, 800), (64, 128, 256), (0.5, 1.0, 2.0), 8)
    41734

    windows, each a full CNN forward pass on a resized crop: with VGG16
    (~15.5 GFLOPs at 224×224) that is ~650 TFLOPs per image, with MobileNetV2
    (~0.3 GFLOPs) still ~12.5 TFLOPs — versus one backbone pass plus a few
    convolutions for the fully-convolutional ``SlidingWindowDetector``.

    Args:
        image_size: ``(H, W)`` in pixels.
        window_sizes: window sides (square root of the area) in pixels.
        aspect_ratios: height / width ratios.
        stride: step in pixels.

    Returns:
        int, the number of windows.
    """
    height, width = image_size
    if stride < 1:
        raise ValueError(f"`stride` must be >= 1, got {stride}.")
    total = 0
    for h, w in window_shapes(window_sizes, aspect_ratios):
        h, w = int(round(h)), int(round(w))
        if h <= height and w <= width:
            total += ((height - h) // stride + 1) * ((width - w) // stride + 1)
    return total


@keras.saving.register_keras_serializable(package="keras_det")
class SlidingWindowDetector(Detector):
    """Fully-convolutional sliding-window detector (any input size).

    Args:
        num_classes: object classes (0-based labels; background is added).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: format of the boxes given to ``fit`` and returned
            by ``predict``.
        feature_tap: backbone map the windows slide over (``"C4"``, stride 16;
            the window stride is the map's stride).
        window_sizes: window sides in pixels (square root of the area).
        aspect_ratios: height / width ratios.
        hidden_dim: channels of each window's conv classifier.
        box_regression: refine the window with predicted deltas.
        iou_threshold: IoU with a GT that makes a window positive (0.5).
        allow_low_quality_matches: also make each GT's best window positive
            (helps GTs no window overlaps by 0.5).
        batch_size_per_image, positive_fraction: sampled windows per image
            (256, ≤ 25 % positive).
        score_threshold, nms_iou_threshold, max_detections, pre_nms_topk: decoding.

    Call: float32 images ``[B, H, W, 3]`` in 0..255 → prediction dict
    (``boxes [B, K, 4]`` in ``bounding_box_format``, ``scores [B, K]``,
    ``labels [B, K]`` int32 with -1 padding, ``num_detections [B]``).
    """

    loss_keys = ("cls_loss", "box_loss")

    def __init__(
        self,
        num_classes,
        backbone="mobilenet_v2",
        backbone_weights=None,
        bounding_box_format="xyxy",
        feature_tap="C4",
        window_sizes=(64, 128, 256),
        aspect_ratios=(0.5, 1.0, 2.0),
        hidden_dim=128,
        box_regression=True,
        iou_threshold=0.5,
        allow_low_quality_matches=False,
        batch_size_per_image=256,
        positive_fraction=0.25,
        score_threshold=0.05,
        nms_iou_threshold=0.5,
        max_detections=100,
        pre_nms_topk=1000,
        **kwargs,
    ):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.feature_tap = feature_tap
        self.stride = tap_stride(feature_tap)
        self.window_sizes = tuple(float(s) for s in window_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        anchor_ops.cell_anchors(self.window_sizes, self.aspect_ratios)  # validates
        self.box_regression = bool(box_regression)
        self.backbone = build_backbone(backbone, backbone_weights, (None, None, 3), taps=(feature_tap,))
        self.classifier = WindowClassifier(
            self.num_classes, window_shapes(self.window_sizes, self.aspect_ratios), self.stride, hidden_dim,
            self.box_regression, name="window_classifier",
        )
        self.decoder = DetectionDecoder(
            _BOX_WEIGHTS if self.box_regression else None, score_threshold, nms_iou_threshold, max_detections,
            pre_nms_topk, bounding_box_format=bounding_box_format, name="decoder",
        )
        self.target_encoder = TargetEncoder(
            Matcher((float(iou_threshold),), (0, 1), allow_low_quality_matches=allow_low_quality_matches),
            BalancedSampler(batch_size_per_image, positive_fraction),
            BoxCoder(_BOX_WEIGHTS),
        )

    def windows(self, features):
        """Window boxes of a feature map: float32 ``[h·w·T, 4]`` absolute ``yxyx``."""
        shape = tf.shape(features)
        return anchor_ops.grid_anchors((shape[1], shape[2]), self.stride, self.window_sizes, self.aspect_ratios)

    def head_outputs(self, images, training=False):
        """``(windows [N, 4], logits [B, N, C + 1], deltas [B, N, 4])``."""
        features = self.backbone(tf.cast(images, tf.float32), training=training)[self.feature_tap]
        logits, deltas = self.classifier(features)
        return self.windows(features), logits, deltas

    def call(self, images, training=False):
        windows, logits, deltas = self.head_outputs(images, training)
        probs = tf.nn.softmax(logits, axis=-1)[..., 1:]
        if not self.box_regression:
            deltas = tf.broadcast_to(windows[None], tf.shape(deltas))  # the boxes are the windows
        return self.decoder(windows, deltas, probs, tf.shape(images)[1:3])

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        windows, logits, deltas = self.head_outputs(images, training)
        t = self.target_encoder(windows, gt_boxes, gt_labels)
        sampled = tf.reduce_sum(t["class_weights"])
        losses = {"cls_loss": loss_ops.softmax_cross_entropy(logits, t["labels"], t["class_weights"])}
        if self.box_regression:
            losses["box_loss"] = loss_ops.box_regression_loss(deltas, t["box_targets"], t["box_weights"], sampled)
        else:
            losses["box_loss"] = tf.zeros([])
        return losses

