"""SSD's extra feature layers: the maps added after the backbone, down to 1×1.

Each block is a 1×1 conv (half the channels) and a 3×3 stride-2 conv (SSD) or
a depthwise-separable one (SSDLite), each followed by BatchNorm + ReLU; a 3×3
map becomes 1×1 by a 'valid' conv. A non-square map halves ('same', stride 2)
until it is 1×1 (a 'valid' 3×3 conv needs both sides of at least 3).
"""

import keras

from keras_det.layers.batch_norm import FusedBatchNormalization


def _extra_block(x, filters, three_by_three, kind, index):
    """1×1 conv (filters/2) then a 3×3 stride-2 conv; a 3×3 map → 1×1 by a 'valid' conv."""
    name = f"extra{index}"
    x = keras.layers.Conv2D(max(filters // 2, 1), 1, use_bias=False, name=f"{name}_reduce")(x)
    x = FusedBatchNormalization(name=f"{name}_reduce_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_reduce_relu")(x)
    if three_by_three:
        strides, padding = 1, "valid"
    else:
        strides, padding = 2, "same"
    if kind == "ssdlite":
        x = keras.layers.DepthwiseConv2D(3, strides=strides, padding=padding, use_bias=False, name=f"{name}_dw")(x)
        x = FusedBatchNormalization(name=f"{name}_dw_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    else:
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_extra_layers(input_shape, filters=256, num_levels=None, kind="ssd"):
    """The extra feature maps after the backbone.

    Args:
        input_shape: ``(h, w, C)`` of the last backbone tap (static).
        filters: output channels of each extra map (an int or one per map).
        num_levels: how many extra maps; ``None`` adds maps until 1×1.
        kind: ``"ssd"`` (3×3 convs) or ``"ssdlite"`` (depthwise-separable).

    Returns:
        ``keras.Model`` mapping ``[B, h, w, C]`` to a list of maps (may be empty).
    """
    inputs = keras.Input(shape=tuple(input_shape), name="last_tap")
    x = inputs
    h, w = int(input_shape[0]), int(input_shape[1])
    outputs = []
    index = 0
    while (num_levels is None and max(h, w) > 1) or (num_levels is not None and index < num_levels):
        width = filters if isinstance(filters, int) else int(filters[min(index, len(filters) - 1)])
        three_by_three = (h, w) == (3, 3)
        x = _extra_block(x, width, three_by_three, kind, index)
        h, w = (1, 1) if three_by_three else (-(-h // 2), -(-w // 2))
        outputs.append(x)
        index += 1
    return keras.Model(inputs, outputs, name="extra_layers")
