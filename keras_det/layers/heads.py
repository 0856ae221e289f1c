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
