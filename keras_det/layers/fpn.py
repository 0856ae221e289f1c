"""Feature Pyramid Network neck (Lin et al., 2017)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_det")
class FeaturePyramid(keras.layers.Layer):
    """Top-down pathway with lateral connections.

    ``P_k = conv3x3(lateral1x1(C_k) + upsample2x(P_{k+1}))`` for the given
    backbone levels, plus ``extra_levels`` maps made by stride-2 max-pooling
    of the coarsest one (FPN's P6 for the RPN).

    Args:
        filters: channels of every output map (256 in the paper).
        extra_levels: pooled levels added above the coarsest input.

    Call arguments:
        features: dict ``{"C3": [B, H/8, W/8, c3], "C4": ..., "C5": ...}``
            (keys ``C<k>``, consecutive levels).

    Returns:
        dict ``{"P3": [B, H/8, W/8, filters], ..., "P<max+extra>": ...}``.
    """

    def __init__(self, filters=256, extra_levels=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.extra_levels = int(extra_levels)
        self.laterals = {}
        self.outputs = {}

    def build(self, input_shape):
        for name, shape in sorted(input_shape.items()):
            level = int(name[1:])
            lateral = keras.layers.Conv2D(self.filters, 1, name=f"lateral{level}")
            lateral.build(shape)
            output = keras.layers.Conv2D(self.filters, 3, padding="same", name=f"output{level}")
            output.build(tuple(shape[:-1]) + (self.filters,))
            self.laterals[level] = lateral
            self.outputs[level] = output

    def call(self, features):
        levels = sorted(int(name[1:]) for name in features)
        if levels != list(range(levels[0], levels[-1] + 1)):
            raise ValueError(f"FeaturePyramid needs consecutive levels, got {levels}.")
        result = {}
        top = None
        for level in reversed(levels):
            lateral = self.laterals[level](features[f"C{level}"])
            if top is not None:
                lateral = lateral + tf.image.resize(top, tf.shape(lateral)[1:3], method="nearest")
            top = lateral
            result[f"P{level}"] = self.outputs[level](lateral)
        coarsest = result[f"P{levels[-1]}"]
        for k in range(1, self.extra_levels + 1):
            coarsest = tf.nn.max_pool2d(coarsest, 1, 2, "SAME")
            result[f"P{levels[-1] + k}"] = coarsest
        return result

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "extra_levels": self.extra_levels})
        return config
