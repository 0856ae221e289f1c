"""RoI heads of the two-stage detectors: box, mask and keypoint branches.

Each head holds its own ``RoIPooler`` (one map or an FPN pyramid, by level
names) and its prediction layer (``RoIBoxHead``, ``MaskHead``,
``KeypointHead``). ``BoxRoIHead`` also holds the box coder that its target
encoder and its decoder share, and returns, besides losses and detections,
the intermediates the other branches plug into: the sampled RoIs, their
matched targets and the positive RoIs. ``RoIHeads`` runs the three in the
order of Mask R-CNN (He et al., 2017). Every box is absolute ``yxyx``; the
model converts to its ``bounding_box_format`` once, at its boundary.
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.layers.decoder import DetectionDecoder
from keras_det.layers.heads import KeypointHead, MaskHead, RoIBoxHead
from keras_det.layers.roi_pooling import RoIPooler
from keras_det.layers.rpn import _PartLayer
from keras_det.ops import boxes as box_ops
from keras_det.ops.instances import decode_keypoints, pad_slots, used_slots
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder, gather_class_deltas, keypoint_targets, mask_targets, select_sampled


def _chosen_class(logits, classes):
    """``[B, R, h, w, C]`` logits → ``[B, R, h, w]`` of channel ``classes [B, R]``."""
    return tf.gather(tf.transpose(logits, [0, 1, 4, 2, 3]), classes[..., None], batch_dims=2)[:, :, 0]


@keras.saving.register_keras_serializable(package="keras_det")
class BoxRoIHead(_PartLayer):
    """Fast R-CNN's RoI head: sample RoIs, pool, classify, regress, decode.

    Training (Girshick, 2015): the GT boxes join the proposals, RoIs with IoU
    ≥ 0.5 are foreground and those in ``[background_iou, 0.5)`` background
    (all below 0.5 with ``background_iou=0``), ``batch_size_per_image`` RoIs
    per image with at most ``positive_fraction`` foreground; softmax
    cross-entropy and smooth-L1 on the GT class's deltas. Inference: class
    probabilities and per-class deltas → ``DetectionDecoder`` (per-class NMS),
    on the proposal slots up to the last valid one (``skip_padding``).

    Args:
        num_classes: object classes (background is added).
        levels: feature maps the pooler reads (``("C4",)``, ``("P3", "P4", "P5")``).
        roi_pooling: ``"align"`` or ``"pool"``; roi_output_size: pooled side (7).
        fc_dims, class_agnostic: the ``RoIBoxHead``.
        batch_size_per_image, positive_fraction, background_iou: RoI sampling.
        score_threshold, nms_iou_threshold, max_detections: decoding.
        box_coder_weights: the coder's (``RCNN_BOX_WEIGHTS``).

    Call args:
        features: dict of named maps.
        proposals: ``[B, P, 4]`` absolute ``yxyx``; valid: bool ``[B, P]``.
        image_shape: ``(H, W)``.

    Returns:
        the decoder's dict (``boxes [B, K, 4]`` absolute ``yxyx``,
        ``scores``, ``labels`` (-1 padding), ``num_detections``).
    """

    def __init__(self, num_classes, levels=("C4",), roi_pooling="align", roi_output_size=7, fc_dims=(1024, 1024), class_agnostic=False, batch_size_per_image=512, positive_fraction=0.25, background_iou=0.0, score_threshold=0.05, nms_iou_threshold=0.5, max_detections=100, box_coder_weights=box_ops.RCNN_BOX_WEIGHTS, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.background_iou = float(background_iou)
        self.pooler = RoIPooler((roi_output_size, roi_output_size), levels, roi_pooling, sampling_ratio=2, name="box_pooler")
        self.head = RoIBoxHead(self.num_classes, fc_dims, class_agnostic, name="box_head")
        self.box_coder = box_ops.BoxCoder(box_coder_weights)
        self.decoder = DetectionDecoder(
            score_threshold=score_threshold, iou_threshold=nms_iou_threshold, max_detections=max_detections,
            bounding_box_format="yxyx", box_coder=self.box_coder, name="decoder",
        )
        # Inference skips the padded proposal slots after the last valid one (a speed switch, not saved:
        # the outputs are the same). False keeps the static [B, P] shapes (FLOP counts of the padded graph).
        self.skip_padding = True
        if self.background_iou > 0:
            matcher = Matcher((self.background_iou, 0.5), (-1, 0, 1))
        else:
            matcher = Matcher((0.5,), (0, 1))
        self.targets = TargetEncoder(matcher, BalancedSampler(self.batch_size_per_image, self.positive_fraction), self.box_coder)

    def outputs(self, features, rois, training=False):
        """``(logits [B, R, C + 1], deltas [B, R, C or 1, 4])`` of ``rois``."""
        return self.head(self.pooler(features, rois), training=training)

    def call(self, features, proposals, valid, image_shape, training=False):
        if self.skip_padding and not training:
            # Only the slots up to the last valid proposal run the head: the RPN pads its NMS survivors
            # (135 of 150 at 320 px in the speed configuration), and padding's scores are zeroed below, so
            # the detections are the same (tested). torchvision's RoI heads likewise see the survivors only.
            used = used_slots(valid)
            proposals, valid = proposals[:, :used], valid[:, :used]
        logits, deltas = self.outputs(features, proposals, training)
        probs = tf.nn.softmax(logits, axis=-1)[..., 1:]
        probs = tf.where(valid[..., None], probs, 0.0)
        return self.decoder(proposals, deltas, probs, image_shape)

    def sample(self, proposals, valid, gt_boxes, gt_labels):
        """The training RoIs (proposals + GT boxes, sampled) and their targets, ``S`` per image.

        Returns:
            ``(rois [B, S, 4], targets)`` (`TargetEncoder` entries gathered to ``[B, S, ...]``).
        """
        rois = tf.concat([proposals, gt_boxes], axis=1)
        rois_valid = tf.concat([valid, gt_labels >= 0], axis=1)
        t = self.targets(rois, gt_boxes, gt_labels, anchor_valid=rois_valid)
        idx, sampled = select_sampled(t, self.batch_size_per_image)
        return tf.gather(rois, idx, batch_dims=1), sampled

    def losses_of(self, logits, deltas, t):
        """Softmax + smooth-L1 (GT class deltas) over the sampled RoIs' targets ``t``."""
        sampled = tf.reduce_sum(t["class_weights"])
        return {
            "roi_cls_loss": loss_ops.softmax_cross_entropy(logits, t["labels"], t["class_weights"]),
            "roi_box_loss": loss_ops.box_regression_loss(
                gather_class_deltas(deltas, t["labels"]), t["box_targets"], t["box_weights"], sampled
            ),
        }

    def compute_losses(self, features, proposals, valid, gt_boxes, gt_labels, training=True):
        """``(losses, rois, targets)``: the box losses and the sampled RoIs with their targets."""
        rois, t = self.sample(proposals, valid, gt_boxes, gt_labels)
        logits, deltas = self.outputs(features, rois, training)
        return self.losses_of(logits, deltas, t), rois, t

    def positives(self, rois, t):
        """The positive sampled RoIs (and their targets), gathered into ``[B, P, ...]``.

        ``P`` is the sampler's cap on positives per image,
        ``int(batch_size_per_image * positive_fraction)``, so no positive is
        ever left out; rows past an image's positives have zero ``box_weights``.
        """
        cap = int(self.batch_size_per_image * self.positive_fraction)
        idx, positives = select_sampled(t, max(cap, 1), by="box_weights")
        return tf.gather(rois, idx, batch_dims=1), positives

    def get_config(self):
        config = super().get_config()
        pooler, head, decoder = self.pooler, self.head, self.decoder
        config.update(
            {
                "num_classes": self.num_classes,
                "levels": list(pooler.levels),
                "roi_pooling": pooler.kind,
                "roi_output_size": pooler.output_size[0],
                "fc_dims": head.fc_dims,
                "class_agnostic": head.class_agnostic,
                "batch_size_per_image": self.batch_size_per_image,
                "positive_fraction": self.positive_fraction,
                "background_iou": self.background_iou,
                "score_threshold": decoder.score_threshold,
                "nms_iou_threshold": decoder.iou_threshold,
                "max_detections": decoder.max_detections,
                "box_coder_weights": self.box_coder.weights,
            }
        )
        return config


def positive_rois(rois, t):
    """The positive RoIs of the sampled ``rois`` and their targets, ``k`` per image.

    The mask and keypoint heads train on positive RoIs only, as torchvision's
    and Detectron2's do: their losses weigh every other RoI 0, and running
    the heads on all sampled RoIs (three quarters negatives at a positive
    fraction of 0.25) cost four times the compute of a training step's mask
    branch for the same loss. ``k`` is the most positives any image has (at
    least 1); images with fewer keep some zero-weight RoIs, so the loss sums
    the same terms.

    Args:
        rois: ``[B, R, 4]`` sampled RoIs.
        t: their targets: ``box_weights [B, R]`` (> 0 for positives),
            ``matched_index [B, R]``, ``labels [B, R]``.

    Returns:
        ``(rois [B, k, 4], t)`` with ``t``'s three entries ``[B, k]``;
        positives first, in their original order.
    """
    positive = tf.cast(t["box_weights"] > 0, tf.float32)
    # At least one (zero-weight) RoI when no image has a positive: TF's CPU
    # Conv2D mis-shapes an empty batch (oneDNN on an AVX-512 CPU returns the
    # input's channels), as `RoIHeads.call` notes for inference.
    k = tf.maximum(tf.cast(tf.reduce_max(tf.reduce_sum(positive, axis=1)), tf.int32), 1)
    _, order = tf.math.top_k(positive, k=k)  # ties keep the lower index first

    def pick(x):
        return tf.gather(x, order, batch_dims=1)

    return pick(rois), {key: pick(t[key]) for key in ("box_weights", "matched_index", "labels")}


@keras.saving.register_keras_serializable(package="keras_det")
class MaskRoIHead(_PartLayer):
    """Mask R-CNN's mask branch: RoIAlign (14×14) → ``MaskHead`` → 28×28 per class.

    Trained with binary cross-entropy on the GT class's channel only,
    averaged over the positive RoIs; targets are the GT masks RoIAligned to
    the output size (``keras_det.ops.targets.mask_targets``).

    Args:
        num_classes: object classes.
        levels: feature maps the pooler reads.
        roi_size: RoIAlign side (14; masks are twice it).
        conv_dims, num_convs: the ``MaskHead``.

    Call args:
        features: dict of named maps; boxes: ``[B, D, 4]`` absolute ``yxyx``;
        labels: ``[B, D]`` 0-based classes (-1 padding).

    Returns:
        float32 ``[B, D, 2 roi_size, 2 roi_size]`` probabilities of each
        box's class (zeros for padding).
    """

    head_class = MaskHead
    _kind = "mask"

    def __init__(self, num_classes, levels=("C4",), roi_size=14, conv_dims=256, num_convs=4, **kwargs):
        super().__init__(**kwargs)
        self.num_outputs = int(num_classes)
        self.roi_size = int(roi_size)
        self.pooler = RoIPooler((self.roi_size, self.roi_size), levels, "align", sampling_ratio=2, name=f"{self._kind}_roi_align")
        self.head = self.head_class(self.num_outputs, conv_dims, num_convs, name=f"{self._kind}_head")

    @property
    def output_size(self):
        return (2 * self.roi_size, 2 * self.roi_size)

    def logits(self, features, rois):
        """``[B, R, 2s, 2s, channels]`` logits of ``rois``."""
        return self.head(self.pooler(features, rois))

    def call(self, features, boxes, labels):
        chosen = _chosen_class(self.logits(features, boxes), tf.maximum(labels, 0))
        return tf.sigmoid(chosen) * tf.cast(labels >= 0, tf.float32)[..., None, None]

    def loss(self, features, rois, t, gt_masks):
        """``keras_det.losses.mask_loss`` of the GT class's mask over the positive RoIs of ``t``."""
        rois, t = positive_rois(rois, t)
        logits = self.logits(features, rois)
        targets = mask_targets(gt_masks, t["matched_index"], rois, self.output_size)
        chosen = _chosen_class(logits, tf.maximum(t["labels"] - 1, 0))
        return loss_ops.mask_loss(chosen, targets, t["box_weights"])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_outputs,
                "levels": list(self.pooler.levels),
                "roi_size": self.roi_size,
                "conv_dims": self.head.conv_dims,
                "num_convs": self.head.num_convs,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class KeypointRoIHead(MaskRoIHead):
    """Mask R-CNN's keypoint branch: one heatmap per keypoint type over each box.

    The mask branch's pooling and architecture (``KeypointHead``), with a
    softmax over each heatmap's cells as loss, averaged over visible
    keypoints of positive RoIs (``keras_det.ops.targets.keypoint_targets``).

    Args:
        num_keypoints: keypoint types; levels, roi_size, conv_dims, num_convs:
            as ``MaskRoIHead``.

    Call args:
        features: dict of named maps; boxes: ``[B, D, 4]`` absolute ``yxyx``.

    Returns:
        float32 ``[B, D, num_keypoints, 3]`` ``(x, y, probability)``.
    """

    head_class = KeypointHead
    _kind = "keypoint"

    def __init__(self, num_keypoints, levels=("C4",), roi_size=14, conv_dims=256, num_convs=4, **kwargs):
        kwargs.pop("num_classes", None)
        super().__init__(num_keypoints, levels, roi_size, conv_dims, num_convs, **kwargs)

    def call(self, features, boxes):
        return decode_keypoints(self.logits(features, boxes), boxes)

    def loss(self, features, rois, t, gt_keypoints):
        """``keras_det.losses.keypoint_loss`` over the visible keypoints of the positive RoIs of ``t``."""
        rois, t = positive_rois(rois, t)
        logits = self.logits(features, rois)  # [B, S, h, w, K]
        matched = tf.where(t["box_weights"] > 0, t["matched_index"], -1)
        index, weight = keypoint_targets(gt_keypoints, matched, rois, self.output_size)
        return loss_ops.keypoint_loss(logits, index, weight)

    def get_config(self):
        config = super().get_config()
        config["num_keypoints"] = config.pop("num_classes")
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class RoIHeads(_PartLayer):
    """The second stage: the box head, then optional mask and keypoint heads on its boxes.

    Training: the box head samples RoIs and returns its losses and the
    sampled RoIs with their targets; the mask and keypoint heads see only the
    positive RoIs (the others have zero weight in their losses, and at
    ``1 / (1 - positive_fraction)`` of the RoIs they would be most of the
    step's cost). Inference: detections first; the branches then run on the
    first ``max(num_detections)`` slots only (detections are valid-first)
    and their outputs are zero-padded back to the ``K`` slots — at 320 px the
    mask branch costs ~5 ms per detection. At least one slot runs: TF's CPU
    Conv2D mis-shapes an empty batch.

    Args:
        box: a ``BoxRoIHead``; mask: a ``MaskRoIHead`` or ``None``;
        keypoint: a ``KeypointRoIHead`` or ``None``.

    Call args:
        features: dict of named maps; proposals ``[B, P, 4]`` absolute
        ``yxyx``; valid bool ``[B, P]``; image_shape ``(H, W)``.

    Returns:
        the box head's detections (absolute ``yxyx``) plus ``masks``
        ``[B, K, h, w]`` and ``keypoints`` ``[B, K, k, 3]`` when those heads exist.
    """

    def __init__(self, box, mask=None, keypoint=None, **kwargs):
        super().__init__(**kwargs)
        des = keras.saving.deserialize_keras_object
        self.box = des(box) if isinstance(box, dict) else box
        self.mask = des(mask) if isinstance(mask, dict) else mask
        self.keypoint = des(keypoint) if isinstance(keypoint, dict) else keypoint

    def add_branches(self, mask=None, keypoint=None):
        """Adds the mask / keypoint heads (at construction, to a ``RoIHeads`` built without them)."""
        if mask is not None:
            if self.mask is not None:
                raise ValueError("RoIHeads already has a mask head.")
            self.mask = mask
        if keypoint is not None:
            if self.keypoint is not None:
                raise ValueError("RoIHeads already has a keypoint head.")
            self.keypoint = keypoint

    def call(self, features, proposals, valid, image_shape, training=False):
        detections = self.box(features, proposals, valid, image_shape, training=training)
        if self.mask is None and self.keypoint is None:
            return detections
        used = used_slots(detections["labels"] >= 0)
        boxes = detections["boxes"][:, :used]
        labels = detections["labels"][:, :used]
        out = dict(detections)
        if self.mask is not None:
            out["masks"] = pad_slots(self.mask(features, boxes, labels), detections["labels"])
        if self.keypoint is not None:
            present = tf.cast(labels >= 0, tf.float32)
            out["keypoints"] = pad_slots(self.keypoint(features, boxes) * present[..., None, None], detections["labels"])
        return out

    def compute_losses(self, features, proposals, valid, gt_boxes, gt_labels, training=True, masks=None, keypoints=None):
        """``(losses, intermediates)``; intermediates: ``rois``, ``targets``,
        ``positive_rois``, ``positive_targets`` (absolute ``yxyx``, `TargetEncoder` entries).

        Raises:
            ValueError: a mask / keypoint head without ``masks`` / ``keypoints``.
        """
        losses, rois, t = self.box.compute_losses(features, proposals, valid, gt_boxes, gt_labels, training)
        intermediates = {"rois": rois, "targets": t}
        if self.mask is None and self.keypoint is None:
            return losses, intermediates
        if self.mask is not None and masks is None:
            raise ValueError("MaskRCNN needs `masks` [B, M, H, W] in each batch, one instance mask per box.")
        pos_rois, pos_t = self.box.positives(rois, t)
        intermediates.update(positive_rois=pos_rois, positive_targets=pos_t)
        if self.mask is not None:
            losses["mask_loss"] = self.mask.loss(features, pos_rois, pos_t, masks)
        if self.keypoint is not None:
            if keypoints is None:
                raise ValueError("MaskRCNN(num_keypoints > 0) needs `keypoints` [B, M, K, 3] in each batch.")
            losses["keypoint_loss"] = self.keypoint.loss(features, pos_rois, pos_t, keypoints)
        return losses, intermediates

    def get_config(self):
        config = super().get_config()
        ser = keras.saving.serialize_keras_object
        config.update(
            {
                "box": ser(self.box),
                "mask": None if self.mask is None else ser(self.mask),
                "keypoint": None if self.keypoint is None else ser(self.keypoint),
            }
        )
        return config
