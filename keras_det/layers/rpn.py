"""Proposal sources of the two-stage detectors, and the RPN's layers.

``AnchorGenerator`` is the layer form of ``keras_det.ops.anchors.grid_anchors``
(anchors for a feature map of dynamic size); ``RPNHead`` predicts objectness
and deltas per anchor; ``ProposalGenerator`` turns them into proposals.

A proposal source is called ``source(features, image_shape, proposals=None,
training=False)`` → ``(proposals [B, P, 4] yxyx, valid [B, P])`` and has
``compute_losses(features, image_shape, gt_boxes, gt_labels, proposals=None)``
→ ``(proposals, valid, losses)``: ``RegionProposalNetwork`` (Faster / Mask
R-CNN) and ``PrecomputedProposals`` (Fast R-CNN, R-CNN).
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.layers.roi_pooling import feature_level
from keras_det.ops import anchors as anchor_ops
from keras_det.ops import boxes as box_ops
from keras_det.ops import nms as nms_ops
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder


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

    Args (besides the counts): ``box_coder_weights``, or ``box_coder``: the
    RPN's ``BoxCoder`` object, shared with its target encoder.

    Returns:
        ``(proposals, scores)``: float32 ``[B, post_nms_topk, 4]`` absolute
        ``yxyx`` and ``[B, post_nms_topk]`` objectness probabilities, with
        zero boxes and score ``-1`` in the padding rows.
    """

    def __init__(self, pre_nms_topk_train=2000, post_nms_topk_train=2000, pre_nms_topk_test=1000, post_nms_topk_test=1000, nms_iou_threshold=0.7, min_size=1e-3, box_coder_weights=box_ops.UNIT_BOX_WEIGHTS, box_coder=None, **kwargs):
        super().__init__(**kwargs)
        self.pre_nms_topk_train = int(pre_nms_topk_train)
        self.post_nms_topk_train = int(post_nms_topk_train)
        self.pre_nms_topk_test = int(pre_nms_topk_test)
        self.post_nms_topk_test = int(post_nms_topk_test)
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.min_size = float(min_size)
        self.box_coder = box_ops.as_box_coder(box_coder if box_coder is not None else box_coder_weights)
        self.box_coder_weights = self.box_coder.weights

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


class _PartLayer(keras.layers.Layer):
    """A detector part: boxes and feature dicts pass through uncast (pixel
    coordinates stay float32 under mixed precision; sub-layers cast)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def build(self, *args, **kwargs):
        # The sub-layers build on their first call, from the shapes they see.
        self.built = True


@keras.saving.register_keras_serializable(package="keras_det")
class RegionProposalNetwork(_PartLayer):
    """The RPN as one proposal source: head, anchors, proposals, targets and losses.

    One ``RPNHead`` runs on each of the named maps ``levels`` (one map:
    ``("C4",)``; an FPN: ``("P3", "P4", "P5", "P6")``), the outputs of all
    levels are concatenated in level order and line up with the anchors of
    ``keras_det.ops.anchors.multilevel_anchors`` (level ``k`` has stride
    ``2**k``); ``ProposalGenerator`` ranks the levels together. One
    ``BoxCoder`` (``UNIT_BOX_WEIGHTS``) encodes the training targets and
    decodes the proposals. Defaults are Faster R-CNN's (Ren et al.).

    Args:
        levels: names of the maps, each ending in its level number.
        anchor_sizes: one map: all the sizes of its anchors; several maps:
            one size per level.
        aspect_ratios: height/width ratios of every level's anchors.
        filters: width of the head's 3×3 conv.
        batch_size_per_image, positive_fraction: anchor sampling (256, 0.5).
        pre_nms_topk_train, post_nms_topk_train, pre_nms_topk_test,
            post_nms_topk_test, nms_iou_threshold: proposal selection.
        positive_iou, negative_iou: anchor matching thresholds (0.7, 0.3;
            each GT's best anchors are positive too).
        box_coder_weights: the coder's weights.

    Call args:
        features: dict of named maps ``[B, H_l, W_l, C]``.
        image_shape: ``(H, W)`` of the input images.
        training: train or test proposal counts.

    Returns:
        ``(proposals [B, P, 4] absolute yxyx, valid bool [B, P])``; invalid
        rows are zero boxes.

    Raises:
        ValueError: with several levels, not one anchor size per level.
    """

    def __init__(self, levels=("C4",), anchor_sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), filters=256, batch_size_per_image=256, positive_fraction=0.5, pre_nms_topk_train=2000, post_nms_topk_train=2000, pre_nms_topk_test=1000, post_nms_topk_test=1000, nms_iou_threshold=0.7, positive_iou=0.7, negative_iou=0.3, box_coder_weights=box_ops.UNIT_BOX_WEIGHTS, **kwargs):
        super().__init__(**kwargs)
        self.levels = tuple(str(level) for level in levels)
        self.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        if len(self.levels) > 1 and len(self.anchor_sizes) != len(self.levels):
            raise ValueError(
                f"With fpn=True, `anchor_sizes` needs one size per level {self.levels}, got {tuple(anchor_sizes)}."
            )
        # Per level: the anchor sizes, and the stride 2**k of a map named ...k.
        self.level_sizes = [self.anchor_sizes] if len(self.levels) == 1 else [(s,) for s in self.anchor_sizes]
        self.strides = [2 ** feature_level(level) for level in self.levels]
        anchor_ops.cell_anchors(self.level_sizes[0], self.aspect_ratios)  # validates now, not at the first call
        self.filters = int(filters)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.positive_iou = float(positive_iou)
        self.negative_iou = float(negative_iou)
        self.box_coder = box_ops.BoxCoder(box_coder_weights)
        self.head = RPNHead(len(self.level_sizes[0]) * len(self.aspect_ratios), self.filters, name="rpn")
        self.proposal_generator = ProposalGenerator(
            pre_nms_topk_train, post_nms_topk_train, pre_nms_topk_test, post_nms_topk_test, nms_iou_threshold,
            box_coder=self.box_coder, name="proposals",
        )
        self.targets = TargetEncoder(
            Matcher((self.negative_iou, self.positive_iou), (0, -1, 1), allow_low_quality_matches=True),
            BalancedSampler(self.batch_size_per_image, self.positive_fraction),
            self.box_coder,
        )

    def anchors(self, features):
        """``[N, 4]`` absolute ``yxyx`` anchors of all levels (shared by the batch)."""
        shapes = [tf.shape(features[level])[1:3] for level in self.levels]
        anchors, _ = anchor_ops.multilevel_anchors(
            strides=self.strides, sizes=self.level_sizes, aspect_ratios=self.aspect_ratios, feature_shapes=shapes
        )
        return anchors

    def head_outputs(self, features):
        """``(objectness [B, N], deltas [B, N, 4], anchors [N, 4])`` over all levels."""
        outputs = [self.head(features[level]) for level in self.levels]
        if len(outputs) == 1:
            objectness, deltas = outputs[0]
        else:
            objectness = tf.concat([o for o, _ in outputs], axis=1)
            deltas = tf.concat([d for _, d in outputs], axis=1)
        return objectness, deltas, self.anchors(features)

    def propose(self, objectness, deltas, anchors, image_shape, training=False):
        proposals, scores = self.proposal_generator(objectness, deltas, anchors, image_shape, training=training)
        return proposals, scores >= 0.0

    def call(self, features, image_shape, proposals=None, training=False):
        objectness, deltas, anchors = self.head_outputs(features)
        return self.propose(objectness, deltas, anchors, image_shape, training=training)

    def compute_losses(self, features, image_shape, gt_boxes, gt_labels, proposals=None):
        """Training pass: ``(proposals, valid, {"rpn_cls_loss", "rpn_box_loss"})``.

        Proposals use the training counts; ``gt_boxes`` ``[B, M, 4]``
        absolute ``yxyx``, ``gt_labels`` ``[B, M]`` (``-1`` padding).
        """
        objectness, deltas, anchors = self.head_outputs(features)
        proposals, valid = self.propose(objectness, deltas, anchors, image_shape, training=True)
        t = self.targets(anchors, gt_boxes, gt_labels)
        sampled = tf.reduce_sum(t["class_weights"])
        losses = {
            "rpn_cls_loss": loss_ops.binary_cross_entropy(objectness, t["labels"], t["class_weights"]),
            "rpn_box_loss": loss_ops.box_regression_loss(deltas, t["box_targets"], t["box_weights"], sampled),
        }
        return proposals, valid, losses

    def get_config(self):
        config = super().get_config()
        gen = self.proposal_generator
        config.update(
            {
                "levels": list(self.levels),
                "anchor_sizes": self.anchor_sizes,
                "aspect_ratios": self.aspect_ratios,
                "filters": self.filters,
                "batch_size_per_image": self.batch_size_per_image,
                "positive_fraction": self.positive_fraction,
                "pre_nms_topk_train": gen.pre_nms_topk_train,
                "post_nms_topk_train": gen.post_nms_topk_train,
                "pre_nms_topk_test": gen.pre_nms_topk_test,
                "post_nms_topk_test": gen.post_nms_topk_test,
                "nms_iou_threshold": gen.nms_iou_threshold,
                "positive_iou": self.positive_iou,
                "negative_iou": self.negative_iou,
                "box_coder_weights": self.box_coder.weights,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class PrecomputedProposals(_PartLayer):
    """The proposal source of Fast R-CNN and R-CNN: proposals given with the images.

    Converts ``[B, P, 4]`` proposals in the model's ``bounding_box_format``
    to absolute ``yxyx``; rows of zero area are padding (``valid`` False,
    zero boxes). Precomputed e.g. by selective search (``keras_det.region_proposals``).

    Args:
        bounding_box_format: format of the given proposals.
        owner: the model's name for the error message.

    Call args:
        features: unused (the common proposal-source signature).
        image_shape: ``(H, W)`` of the input images (relative formats).
        proposals: ``[B, P, 4]`` or ``None``.

    Returns:
        ``(proposals [B, P, 4] absolute yxyx, valid bool [B, P])``.

    Raises:
        ValueError: no proposals given.
    """

    def __init__(self, bounding_box_format="xyxy", owner="FastRCNN", **kwargs):
        super().__init__(**kwargs)
        self.bounding_box_format = box_ops.check_format(bounding_box_format)
        self.owner = str(owner)

    def call(self, features, image_shape, proposals=None, training=False):
        if proposals is None:
            raise ValueError(f"{self.owner} needs `proposals` [B, P, 4] with the images (a model input).")
        proposals = box_ops.convert_format(proposals, self.bounding_box_format, "yxyx", image_shape=image_shape)
        valid = box_ops.area(proposals) > 0
        return tf.where(valid[..., None], proposals, 0.0), valid

    def compute_losses(self, features, image_shape, gt_boxes, gt_labels, proposals=None):
        """``(proposals, valid, {})``: given proposals have no loss."""
        proposals, valid = self(features, image_shape, proposals)
        return proposals, valid, {}

    def get_config(self):
        config = super().get_config()
        config.update({"bounding_box_format": self.bounding_box_format, "owner": self.owner})
        return config

