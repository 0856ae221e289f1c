"""R-CNN's second-stage input: image windows warped to a fixed size.

``WarpRegions`` is R-CNN's counterpart of a RoI pooler: it crops each
proposal (with context, ``keras_det.ops.boxes.context_boxes``) from the
*image* and warps it to ``S×S`` for a CNN run per window.
"""

import keras
import tensorflow as tf

from keras_det.ops.boxes import context_boxes


@keras.saving.register_keras_serializable(package="keras_det")
class WarpRegions(keras.layers.Layer):
    """Crops and anisotropically warps boxes of images to ``S×S`` windows.

    Each box is first expanded by `context_boxes`; pixels outside the image
    take the image's mean colour (as in R-CNN). The warp is bilinear
    ``tf.image.crop_and_resize`` sampling the centres of an ``S×S`` grid of
    cells over the (expanded) box, in continuous pixel coordinates.

    Args:
        warp_size: ``S`` (224 for ImageNet backbones, 227 in the paper).
        context_padding: context in warped pixels (16; 0 disables).

    Call arguments:
        images: float ``[B, H, W, 3]``.
        boxes: float ``[N, 4]`` absolute ``yxyx``.
        box_indices: int32 ``[N]``: the image of each box.

    Returns:
        float32 ``[N, S, S, 3]``.
    """

    def __init__(self, warp_size=224, context_padding=16, **kwargs):
        super().__init__(**kwargs)
        self.warp_size = int(warp_size)
        self.context_padding = int(context_padding)

    def call(self, images, boxes, box_indices):
        images = tf.cast(images, tf.float32)
        boxes = tf.cast(boxes, tf.float32)
        box_indices = tf.cast(box_indices, tf.int32)
        if self.context_padding:
            boxes = context_boxes(boxes, self.warp_size, self.context_padding)
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        # A margin of mean-coloured pixels around the image (zeros after the
        # mean is subtracted) covers the context of boxes inside the image, so
        # samples at the border interpolate instead of flipping between
        # "inside" and "extrapolated" with float rounding (eager vs graph).
        hw = tf.shape(images)[1:3]
        margin = tf.cast(tf.math.ceil(0.5 * float(self.warp_size) / max(self.warp_size - 2 * self.context_padding, 1)
                                      * tf.cast(tf.reduce_max(hw), tf.float32)), tf.int32) + 2
        padded = tf.pad(images - mean, [[0, 0], [margin, margin], [margin, margin], [0, 0]])
        boxes = boxes + tf.cast(margin, tf.float32)
        shape = tf.cast(tf.shape(padded)[1:3], tf.float32)
        # Sample the centres of an S×S grid of cells over the box (continuous
        # coordinate c is pixel index c - 0.5); crop_and_resize puts its first
        # and last samples on the normalised corners given.
        half_cell = 0.5 * tf.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], -1) / self.warp_size
        starts = boxes[:, :2] - 0.5 + half_cell
        ends = boxes[:, 2:] - 0.5 - half_cell
        denom = tf.maximum(shape - 1.0, 1.0)
        norm = tf.concat([starts / denom, ends / denom], -1)
        crops = tf.image.crop_and_resize(
            padded, norm, box_indices, [self.warp_size, self.warp_size], method="bilinear", extrapolation_value=0.0,
        )
        return crops + tf.gather(mean, box_indices)

    def get_config(self):
        config = super().get_config()
        config.update({"warp_size": self.warp_size, "context_padding": self.context_padding})
        return config
