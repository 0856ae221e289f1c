"""Region proposal network layers.

``AnchorGenerator`` is the layer form of ``keras_det.ops.anchors.grid_anchors``
(anchors for a feature map of dynamic size); ``RPNHead`` predicts objectness
and deltas per anchor; ``ProposalGenerator`` turns them into proposals.
"""

import keras
import tensorflow as tf

from keras_det.ops import anchors as anchor_ops
from keras_det.ops import boxes as box_ops
from keras_det.ops import nms as nms_ops


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


@keras.saving.register_keras_serializable(package="keras_det")
class RPNHead(keras.layers.Layer):
    """Region proposal network head (Ren et al., 2015).

    A 3×3 convolution (``filters`` channels, ReLU) slides over the feature map;
    two sibling 1×1 convolutions predict, per cell and anchor, an objectness
    logit and 4 box deltas (``BoxCoder`` order ``dy, dx, dh, dw``). Weights are
    initialised N(0, 0.01²) with zero biases, as in the paper.

    Call arguments:
        features: ``[B, H, W, C]``.

    Returns:
        ``(objectness, deltas)``: float32 ``[B, H * W * A]`` logits and
        ``[B, H * W * A, 4]`` deltas, in ``AnchorGenerator``'s order.
    """

    def __init__(self, num_anchors=9, filters=256, **kwargs):
        super().__init__(**kwargs)
        self.num_anchors = int(num_anchors)
        self.filters = int(filters)
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.conv = keras.layers.Conv2D(
            self.filters, 3, padding="same", activation="relu", kernel_initializer=init, name="conv"
        )
        self.objectness = keras.layers.Conv2D(self.num_anchors, 1, kernel_initializer=init, name="objectness")
        self.deltas = keras.layers.Conv2D(4 * self.num_anchors, 1, kernel_initializer=init, name="deltas")

    def build(self, input_shape):
        self.conv.build(input_shape)
        hidden = tuple(input_shape[:-1]) + (self.filters,)
        self.objectness.build(hidden)
        self.deltas.build(hidden)

    def call(self, features):
        x = self.conv(features)
        batch = tf.shape(features)[0]
        logits = tf.reshape(self.objectness(x), [batch, -1])
        deltas = tf.reshape(self.deltas(x), [batch, -1, 4])
        return tf.cast(logits, tf.float32), tf.cast(deltas, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update({"num_anchors": self.num_anchors, "filters": self.filters})
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class ProposalGenerator(keras.layers.Layer):
    """Turns RPN outputs into a fixed number of proposals per image.

    decode deltas on anchors → clip to the image → drop boxes with a side
    below ``min_size`` → keep the ``pre_nms_topk`` highest objectness → NMS at
    ``nms_iou_threshold`` → keep ``post_nms_topk``. Train and test use
    different counts (torchvision: 2000/2000 and 1000/1000). Proposals are
    not differentiated through (the RoI head treats them as inputs).

    Call arguments:
        objectness: ``[B, N]`` logits.
        deltas: ``[B, N, 4]``.
        anchors: ``[N, 4]`` absolute ``yxyx``.
        image_shape: ``(H, W)`` of the (padded) input images.
        training: selects the train or test counts.

    Returns:
        ``(proposals, scores)``: float32 ``[B, post_nms_topk, 4]`` absolute
        ``yxyx`` and ``[B, post_nms_topk]`` objectness probabilities, with
        zero boxes and score ``-1`` in the padding rows.
    """

    def __init__(self, pre_nms_topk_train=2000, post_nms_topk_train=2000, pre_nms_topk_test=1000, post_nms_topk_test=1000, nms_iou_threshold=0.7, min_size=1e-3, box_coder_weights=(1.0, 1.0, 1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.pre_nms_topk_train = int(pre_nms_topk_train)
        self.post_nms_topk_train = int(post_nms_topk_train)
        self.pre_nms_topk_test = int(pre_nms_topk_test)
        self.post_nms_topk_test = int(post_nms_topk_test)
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.min_size = float(min_size)
        self.box_coder_weights = tuple(float(w) for w in box_coder_weights)
        self.box_coder = box_ops.BoxCoder(self.box_coder_weights)

    def call(self, objectness, deltas, anchors, image_shape, training=False):
        pre = self.pre_nms_topk_train if training else self.pre_nms_topk_test
        post = self.post_nms_topk_train if training else self.post_nms_topk_test
        objectness = tf.stop_gradient(tf.cast(objectness, tf.float32))
        deltas = tf.stop_gradient(tf.cast(deltas, tf.float32))
        num = tf.shape(objectness)[1]
        k = tf.minimum(pre, num)
        top_logits, top_idx = tf.math.top_k(objectness, k=k)
        boxes = self.box_coder.decode(
            tf.gather(deltas, top_idx, batch_dims=1), tf.gather(tf.cast(anchors, tf.float32), top_idx)
        )
        boxes = box_ops.clip(boxes, image_shape)
        big = ((boxes[..., 2] - boxes[..., 0]) >= self.min_size) & ((boxes[..., 3] - boxes[..., 1]) >= self.min_size)
        scores = tf.where(big, tf.sigmoid(top_logits), -1.0)
        keep, _ = nms_ops.padded_nms(boxes, scores, self.nms_iou_threshold, post, score_threshold=-0.5)
        valid = keep >= 0
        safe = tf.maximum(keep, 0)
        proposals = tf.where(valid[..., None], tf.gather(boxes, safe, batch_dims=1), 0.0)
        proposal_scores = tf.where(valid, tf.gather(scores, safe, batch_dims=1), -1.0)
        return proposals, proposal_scores

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pre_nms_topk_train": self.pre_nms_topk_train,
                "post_nms_topk_train": self.post_nms_topk_train,
                "pre_nms_topk_test": self.pre_nms_topk_test,
                "post_nms_topk_test": self.post_nms_topk_test,
                "nms_iou_threshold": self.nms_iou_threshold,
                "min_size": self.min_size,
                "box_coder_weights": self.box_coder_weights,
            }
        )
        return config
