"""Prediction heads.

``RoIBoxHead`` is the Fast/Faster R-CNN head: two fully connected layers on
each pooled RoI, then sibling class-softmax and per-class box-regression
outputs. The single-shot heads (``SSDHead``, ``YOLOHead``) and the Mask R-CNN
heads (``MaskHead``, ``KeypointHead``) join this module with their models.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_det")
class RoIBoxHead(keras.layers.Layer):
    """Two FC layers + class logits + box deltas for pooled RoIs.

    Args:
        num_classes: object classes (background is added: ``num_classes + 1`` logits).
        fc_dims: widths of the hidden FC layers (Fast R-CNN: 4096, 4096 on VGG16;
            1024, 1024 in the FPN era).
        class_agnostic: one box per RoI (4 outputs) instead of one per class.
        dropout: dropout after each FC layer during training.

    Call arguments:
        pooled: ``[B, R, oh, ow, C]`` from ``RoIPooling`` / ``RoIAlign``.

    Returns:
        ``(logits, deltas)``: ``[B, R, num_classes + 1]`` (index 0 background)
        and ``[B, R, K, 4]`` with ``K = num_classes`` (or 1 if class-agnostic),
        box deltas for class ``k`` at ``[..., k, :]``.
    """

    def __init__(self, num_classes, fc_dims=(1024, 1024), class_agnostic=False, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.fc_dims = tuple(int(d) for d in fc_dims)
        self.class_agnostic = bool(class_agnostic)
        self.dropout_rate = float(dropout)
        self.fcs = [keras.layers.Dense(d, activation="relu", name=f"fc{i + 6}") for i, d in enumerate(self.fc_dims)]
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.cls = keras.layers.Dense(
            self.num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), name="cls_score"
        )
        k = 1 if self.class_agnostic else self.num_classes
        self.box = keras.layers.Dense(
            4 * k, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name="bbox_pred"
        )

    def build(self, input_shape):
        dim = 1
        for d in input_shape[2:]:
            dim *= d
        shape = (None, dim)
        for fc in self.fcs:
            fc.build(shape)
            shape = (None, fc.units)
        self.cls.build(shape)
        self.box.build(shape)

    def call(self, pooled, training=False):
        shape = tf.shape(pooled)
        batch, rois = shape[0], shape[1]
        x = tf.reshape(pooled, [batch * rois, -1])
        for fc in self.fcs:
            x = self.dropout(fc(x), training=training)
        logits = tf.reshape(self.cls(x), [batch, rois, self.num_classes + 1])
        deltas = tf.reshape(self.box(x), [batch, rois, -1, 4])
        return tf.cast(logits, tf.float32), tf.cast(deltas, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "fc_dims": self.fc_dims,
                "class_agnostic": self.class_agnostic,
                "dropout": self.dropout_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class MaskHead(keras.layers.Layer):
    """Mask R-CNN mask branch: per-RoI, per-class binary masks.

    ``num_convs`` 3×3 convolutions (ReLU) on the RoIAligned features
    (14×14 in the paper), a 2×2 stride-2 transposed convolution (→ 28×28)
    and a 1×1 convolution with one mask logit channel per class.

    Args:
        num_classes: object classes (no background channel).
        conv_dims: width of the convolutions (256 in the paper).
        num_convs: number of 3×3 convolutions (4 in the paper).

    Call arguments:
        pooled: ``[B, R, h, w, C]`` RoIAligned features.

    Returns:
        float32 mask logits ``[B, R, 2h, 2w, num_classes]``.
    """

    def __init__(self, num_classes, conv_dims=256, num_convs=4, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.conv_dims = int(conv_dims)
        self.num_convs = int(num_convs)
        init = keras.initializers.HeNormal()
        self.convs = [
            keras.layers.Conv2D(self.conv_dims, 3, padding="same", activation="relu", kernel_initializer=init, name=f"mask_fcn{i + 1}")
            for i in range(self.num_convs)
        ]
        self.deconv = keras.layers.Conv2DTranspose(self.conv_dims, 2, strides=2, activation="relu", kernel_initializer=init, name="deconv")
        self.predictor = keras.layers.Conv2D(
            self.num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name="mask_logits"
        )

    def build(self, input_shape):
        shape = (None,) + tuple(input_shape[2:])
        for conv in self.convs:
            conv.build(shape)
            shape = shape[:-1] + (self.conv_dims,)
        self.deconv.build(shape)
        h = None if shape[1] is None else 2 * shape[1]
        w = None if shape[2] is None else 2 * shape[2]
        self.predictor.build((None, h, w, self.conv_dims))

    def call(self, pooled):
        shape = tf.shape(pooled)
        x = tf.reshape(pooled, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))
        for conv in self.convs:
            x = conv(x)
        x = self.predictor(self.deconv(x))
        out_shape = tf.concat([shape[:2], tf.shape(x)[1:]], 0)
        return tf.cast(tf.reshape(x, out_shape), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "conv_dims": self.conv_dims, "num_convs": self.num_convs})
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class KeypointHead(MaskHead):
    """Mask R-CNN keypoint branch: one heatmap per keypoint type.

    The architecture of ``MaskHead`` (convs → 2× transposed conv → 1×1) with
    one output channel per keypoint instead of per class; the difference is
    the loss, a softmax over each heatmap's cells (see
    ``keras_det.ops.targets.keypoint_targets``).

    Args:
        num_keypoints: keypoint types (17 for COCO people).
        conv_dims, num_convs: width and depth (512 and 8 in the paper).

    Returns:
        float32 heatmap logits ``[B, R, 2h, 2w, num_keypoints]``.
    """

    def __init__(self, num_keypoints, conv_dims=256, num_convs=4, **kwargs):
        kwargs.pop("num_classes", None)
        super().__init__(num_keypoints, conv_dims, num_convs, **kwargs)
        self.num_keypoints = int(num_keypoints)

    def get_config(self):
        config = super().get_config()
        config.pop("num_classes")
        config["num_keypoints"] = self.num_keypoints
        return config
