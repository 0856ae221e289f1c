"""Region proposal network layers.

``AnchorGenerator`` is the layer form of ``keras_det.ops.anchors.grid_anchors``
(anchors for a feature map of dynamic size). ``RPNHead`` and
``ProposalGenerator`` arrive with the two-stage detectors.
"""

import keras
import tensorflow as tf

from keras_det.ops import anchors as anchor_ops


@keras.saving.register_keras_serializable(package="keras_det")
class AnchorGenerator(keras.layers.Layer):
    """Faster R-CNN anchors for a feature map.

    Per cell ``len(sizes) * len(aspect_ratios)`` anchors (9 by default: sizes
    128/256/512 × height/width ratios 0.5/1/2), centred on the cell; the order
    is row-major over cells, then aspect-ratio major / size minor within a
    cell (see ``keras_det.ops.anchors``).

    Call arguments:
        features: ``[B, H, W, C]`` feature map (only its shape is used).

    Returns:
        float32 ``[H * W * A, 4]`` absolute ``yxyx`` anchors in input-image
        pixels (shared by the batch).
    """

    def __init__(self, sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), stride=16, offset=0.5, **kwargs):
        super().__init__(**kwargs)
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride = stride if isinstance(stride, (int, float)) else tuple(stride)
        self.offset = float(offset)
        # Validates the arguments at construction time, not at the first call.
        anchor_ops.cell_anchors(self.sizes, self.aspect_ratios)

    @property
    def num_anchors_per_location(self):
        return len(self.sizes) * len(self.aspect_ratios)

    def call(self, features):
        shape = tf.shape(features)
        return anchor_ops.grid_anchors(
            (shape[1], shape[2]), self.stride, self.sizes, self.aspect_ratios, self.offset
        )

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        n = None if h is None or w is None else h * w * self.num_anchors_per_location
        return (n, 4)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sizes": self.sizes,
                "aspect_ratios": self.aspect_ratios,
                "stride": self.stride,
                "offset": self.offset,
            }
        )
        return config
