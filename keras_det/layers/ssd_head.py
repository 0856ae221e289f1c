"""``SSDHead``: per-level class and box predictors of SSD / SSDLite.

(The design lists the single-shot heads in ``heads.py``; this module keeps
them apart until the lead merges them.)
"""

import keras
import tensorflow as tf

from keras_det.layers.batch_norm import FusedBatchNormalization


def _predictor(filters, kind, name):
    """A 3×3 conv (``"ssd"``) or depthwise 3×3 + BN + ReLU6 + 1×1 conv (``"ssdlite"``)."""
    init = keras.initializers.GlorotUniform()
    if kind == "ssd":
        return keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer=init, name=name)
    return keras.Sequential(
        [
            keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw"),
            FusedBatchNormalization(name=f"{name}_bn"),
            keras.layers.ReLU(6.0, name=f"{name}_relu6"),
            keras.layers.Conv2D(filters, 1, kernel_initializer=init, name=f"{name}_pw"),
        ],
        name=name,
    )


HEAD_KINDS = ("ssd", "ssdlite")


@keras.saving.register_keras_serializable(package="keras_det")
class SSDHead(keras.layers.Layer):
    """Class and box predictors on each SSD feature map.

    For level ``l`` with ``A_l`` default boxes per cell, a 3×3 convolution
    predicts ``A_l * (num_classes + 1)`` class logits and another ``A_l * 4``
    box deltas (Liu et al., 2016). ``kind="ssdlite"`` replaces each 3×3
    convolution by a depthwise-separable one (depthwise 3×3, BN, ReLU6,
    pointwise 1×1; MobileNetV2's SSDLite).

    Args:
        num_classes: object classes (background is added: index 0).
        num_anchors: sequence, default boxes per cell for each level.
        kind: ``"ssd"`` or ``"ssdlite"``.

    Call arguments:
        features: list of ``[B, h_l, w_l, C_l]``, one per level, finest first.

    Returns:
        ``(logits, deltas)``: float32 ``[B, N, num_classes + 1]`` and
        ``[B, N, 4]`` (``BoxCoder`` order ``dy, dx, dh, dw``), with
        ``N = sum_l h_l w_l A_l`` ordered level by level, row-major over
        cells, then the boxes of a cell — the order of
        ``keras_det.ops.anchors.ssd_default_boxes``.
    """

    def __init__(self, num_classes, num_anchors, kind="ssd", **kwargs):
        super().__init__(**kwargs)
        if kind not in HEAD_KINDS:
            raise ValueError(f"`kind` must be one of {HEAD_KINDS}, got {kind!r}.")
        self.num_classes = int(num_classes)
        self.num_anchors = tuple(int(a) for a in num_anchors)
        self.kind = kind
        k = self.num_classes + 1
        self.cls_convs = [_predictor(a * k, kind, f"cls_{i}") for i, a in enumerate(self.num_anchors)]
        self.box_convs = [_predictor(a * 4, kind, f"box_{i}") for i, a in enumerate(self.num_anchors)]

    def build(self, input_shape):
        if len(input_shape) != len(self.num_anchors):
            raise ValueError(f"SSDHead has {len(self.num_anchors)} levels but got {len(input_shape)} feature maps.")
        for shape, cls_conv, box_conv in zip(input_shape, self.cls_convs, self.box_convs):
            cls_conv.build(tuple(shape))
            box_conv.build(tuple(shape))

    def call(self, features, training=False):
        batch = tf.shape(features[0])[0]
        logits, deltas = [], []
        for x, cls_conv, box_conv in zip(features, self.cls_convs, self.box_convs):
            logits.append(tf.reshape(cls_conv(x, training=training), [batch, -1, self.num_classes + 1]))
            deltas.append(tf.reshape(box_conv(x, training=training), [batch, -1, 4]))
        return tf.cast(tf.concat(logits, 1), tf.float32), tf.cast(tf.concat(deltas, 1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "num_anchors": self.num_anchors, "kind": self.kind})
        return config
