"""``WindowClassifier``: the sliding-window detector's per-window-shape conv classifiers.

A ``k_h × k_w`` convolution over a stride-``s`` feature map classifies every
window whose footprint is ``≈ k_h·s × k_w·s`` pixels at once
(``keras_det.models.sliding_window``).
"""

import math

import keras
import tensorflow as tf


def _odd_cells(pixels, stride):
    """Nearest odd number of feature-map cells to ``pixels / stride`` (ties
    round up, ≥ 1); odd kernels keep each output centred on its cell, where
    the window is."""
    return int(math.floor(pixels / stride / 2.0)) * 2 + 1


@keras.saving.register_keras_serializable(package="keras_det")
class WindowClassifier(keras.layers.Layer):
    """One conv classifier per window shape, slid over a feature map.

    For each window ``(h, w)`` in pixels, a ``k_h × k_w`` conv ("same"
    padding, ReLU; ``k`` the odd cell count nearest ``h / stride``) followed
    by a 1×1 conv gives ``num_classes + 1`` logits (index 0 background) and,
    with ``box_regression``, 4 deltas at every position.

    Args:
        num_classes: object classes.
        window_hw: sequence of ``(height, width)`` windows in pixels.
        stride: stride of the feature map.
        hidden_dim: channels of the window convs.
        box_regression: also predict deltas.

    Call arguments:
        features: ``[B, h, w, C]``.

    Returns:
        ``(logits [B, h·w·T, num_classes + 1], deltas [B, h·w·T, 4])`` with
        ``T = len(window_hw)``, row-major over cells then windows (the order
        of ``grid_anchors``); deltas are zeros without regression.
    """

    def __init__(self, num_classes, window_hw, stride, hidden_dim=128, box_regression=True, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.window_hw = tuple((float(h), float(w)) for h, w in window_hw)
        self.stride = int(stride)
        self.hidden_dim = int(hidden_dim)
        self.box_regression = bool(box_regression)
        self.kernel_sizes = [(_odd_cells(h, self.stride), _odd_cells(w, self.stride)) for h, w in self.window_hw]
        self.window_convs = [
            keras.layers.Conv2D(self.hidden_dim, k, padding="same", activation="relu", name=f"window{i}")
            for i, k in enumerate(self.kernel_sizes)
        ]
        self.cls = [
            keras.layers.Conv2D(self.num_classes + 1, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), name=f"cls{i}")
            for i in range(len(self.window_hw))
        ]
        self.box = [
            keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001), name=f"box{i}")
            for i in range(len(self.window_hw))
        ] if self.box_regression else []

    def build(self, input_shape):
        hidden = tuple(input_shape[:-1]) + (self.hidden_dim,)
        for i, conv in enumerate(self.window_convs):
            conv.build(tuple(input_shape))
            self.cls[i].build(hidden)
            if self.box_regression:
                self.box[i].build(hidden)

    def call(self, features):
        batch = tf.shape(features)[0]
        logits, deltas = [], []
        for i, conv in enumerate(self.window_convs):
            x = conv(features)
            logits.append(self.cls[i](x))
            if self.box_regression:
                deltas.append(self.box[i](x))
        logits = tf.reshape(tf.stack(logits, axis=3), [batch, -1, self.num_classes + 1])
        if self.box_regression:
            deltas = tf.reshape(tf.stack(deltas, axis=3), [batch, -1, 4])
        else:
            deltas = tf.zeros([batch, tf.shape(logits)[1], 4])
        return tf.cast(logits, tf.float32), tf.cast(deltas, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "window_hw": self.window_hw,
                "stride": self.stride,
                "hidden_dim": self.hidden_dim,
                "box_regression": self.box_regression,
            }
        )
        return config
