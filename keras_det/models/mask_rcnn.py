"""Mask R-CNN (He et al., 2017): Faster R-CNN + a RoIAlign mask branch.

The mask branch pools 14×14 RoIAlign features of the *positive* sampled RoIs
(training) or of the final detections (inference), predicts a 28×28 mask per
class, and is trained with binary cross-entropy on the channel of the RoI's
ground-truth class only (no competition between classes), averaged over the
positive RoIs. Targets are the GT instance masks RoIAligned to 28×28
(``keras_det.ops.targets.mask_targets``).

Batches must carry ``"masks"`` (``[B, M, H, W]``, one per box, 0/1) next to
``bounding_boxes``; ``keras_det.data.load("shapes", ...)`` provides them.
Predictions add ``masks`` ``[B, K, 28, 28]``: per-detection probabilities in
the frame of the detection box (paste them into the image with
``paste_masks``).
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.layers.heads import KeypointHead, MaskHead
from keras_det.layers.roi_pooling import MultiLevelRoIAlign, RoIAlign
from keras_det.models.fast_rcnn import select_sampled
from keras_det.models.faster_rcnn import FasterRCNN
from keras_det.ops import boxes as box_ops
from keras_det.ops.targets import keypoint_targets, mask_targets


def _pad_slots(x, labels):
    """Zero-pads ``[B, k, ...]`` to the ``K`` detection slots of ``labels [B, K]`` (the slots the branches skipped)."""
    slots = tf.shape(labels)[1]
    paddings = tf.concat([[[0, 0], [0, slots - tf.shape(x)[1]]], tf.zeros([x.shape.rank - 2, 2], tf.int32)], 0)
    padded = tf.pad(x, paddings)
    padded.set_shape(labels.shape[:2].concatenate(x.shape[2:]))
    return padded


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Pastes box-frame masks into full images.

    Args:
        masks: ``[K, h, w]`` probabilities in each box's frame.
        boxes: ``[K, 4]`` absolute ``yxyx``.
        image_shape: ``(H, W)``.
        threshold: binarisation threshold.

    Returns:
        bool ``[K, H, W]``.
    """
    masks = tf.convert_to_tensor(masks, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    height, width = int(image_shape[0]), int(image_shape[1])
    ys = tf.range(height, dtype=tf.float32) + 0.5
    xs = tf.range(width, dtype=tf.float32) + 0.5
    y1, x1, y2, x2 = [boxes[:, i : i + 1] for i in range(4)]
    mh = tf.cast(tf.shape(masks)[1], tf.float32)
    mw = tf.cast(tf.shape(masks)[2], tf.float32)
    # Position of every image pixel centre in each mask's pixel-centre frame.
    fy = (ys[None, :] - y1) / tf.maximum(y2 - y1, 1e-6) * mh - 0.5
    fx = (xs[None, :] - x1) / tf.maximum(x2 - x1, 1e-6) * mw - 0.5
    boxes_n = tf.stack(
        [fy[:, 0] / tf.maximum(mh - 1, 1.0), fx[:, 0] / tf.maximum(mw - 1, 1.0), fy[:, -1] / tf.maximum(mh - 1, 1.0), fx[:, -1] / tf.maximum(mw - 1, 1.0)],
        axis=-1,
    )
    pasted = tf.image.crop_and_resize(
        masks[..., None], boxes_n, tf.range(tf.shape(masks)[0]), (height, width), extrapolation_value=0.0
    )[..., 0]
    inside_y = (ys[None, :] >= y1) & (ys[None, :] < y2)
    inside_x = (xs[None, :] >= x1) & (xs[None, :] < x2)
    return (pasted >= threshold) & inside_y[:, :, None] & inside_x[:, None, :]


@keras.saving.register_keras_serializable(package="keras_det")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN detector and instance segmenter.

    Args:
        num_classes: object classes.
        mask_roi_size: RoIAlign size of the mask branch (14; masks are twice it).
        mask_conv_dims, mask_num_convs: mask head width and depth (256, 4).
        num_keypoints: ``> 0`` adds the keypoint branch ("Mask R-CNN also does
            pose"): batches then carry ``"keypoints"`` ``[B, M, K, 3]``
            (``x, y`` absolute pixels, visibility ``v > 0``), and predictions
            gain ``keypoints`` ``[B, D, K, 3]`` (``x, y, probability``).
        **kwargs: ``FasterRCNN`` arguments.

    Call: images ``[B, H, W, 3]`` → the Faster R-CNN prediction dict plus
    ``masks`` float32 ``[B, K, 2 * mask_roi_size, 2 * mask_roi_size]``.
    """

    loss_keys = FasterRCNN.loss_keys + ("mask_loss",)

    def __init__(self, num_classes, mask_roi_size=14, mask_conv_dims=256, mask_num_convs=4, num_keypoints=0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.num_keypoints = int(num_keypoints)
        if self.num_keypoints:
            self.add_loss_name("keypoint_loss")
        self.config_args.update(
            {
                "mask_roi_size": mask_roi_size,
                "mask_conv_dims": mask_conv_dims,
                "mask_num_convs": mask_num_convs,
                "num_keypoints": self.num_keypoints,
            }
        )
        self.mask_roi_size = int(mask_roi_size)
        size = (self.mask_roi_size, self.mask_roi_size)
        if self.use_fpn:
            self.mask_roi_layer = MultiLevelRoIAlign(size, sampling_ratio=2, name="mask_roi_align")
        else:
            self.mask_roi_layer = RoIAlign(size, 1.0 / self.stride, sampling_ratio=2, aligned=True, name="mask_roi_align")
        self.mask_head = MaskHead(self.num_classes, mask_conv_dims, mask_num_convs, name="mask_head")
        if self.num_keypoints:
            self.keypoint_head = KeypointHead(self.num_keypoints, mask_conv_dims, mask_num_convs, name="keypoint_head")

    def mask_logits(self, features, rois):
        return self.mask_head(self.mask_roi_layer(self.pooling_features(features), rois))

    def call(self, inputs, training=False):
        images = tf.cast(inputs["images"] if isinstance(inputs, dict) else inputs, tf.float32)
        features = self.features(images, training)
        *_, proposals, valid = self.rpn(features, images, training=False)
        detections = self.detect(features, images, proposals, valid, training)
        # Detections are valid-first (padded_nms): the branches run on the first
        # max(num_detections) slots only, and their outputs are zero-padded back
        # to the K slots (a trained model keeps a few of its 100 slots; at 320 px
        # the branch costs ~5 ms per detection: 619 ms with 100, 105 with none). At least
        # one slot: TF's CPU Conv2D mis-shapes an empty batch.
        slots = tf.shape(detections["labels"])[1]
        used = tf.minimum(tf.reduce_max(tf.concat([detections["num_detections"], [1]], 0)), slots)
        boxes = box_ops.convert_format(
            detections["boxes"][:, :used], self.bounding_box_format, "yxyx", image_shape=tf.shape(images)[1:3]
        )
        labels = detections["labels"][:, :used]
        logits = self.mask_logits(features, boxes)  # [B, used, h, w, C]
        chosen = tf.gather(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.maximum(labels, 0)[..., None], batch_dims=2)[:, :, 0]
        present = tf.cast(labels >= 0, tf.float32)
        out = {**detections, "masks": _pad_slots(tf.sigmoid(chosen) * present[..., None, None], detections["labels"])}
        if self.num_keypoints:
            keypoints = self.decode_keypoints(self.keypoint_logits(features, boxes), boxes) * present[..., None, None]
            out["keypoints"] = _pad_slots(keypoints, detections["labels"])
        return out

    def keypoint_logits(self, features, rois):
        # The keypoint branch shares the mask branch's 14x14 RoIAlign.
        return self.keypoint_head(self.mask_roi_layer(self.pooling_features(features), rois))

    @staticmethod
    def decode_keypoints(logits, boxes):
        """Heatmap logits ``[B, D, h, w, K]`` + boxes → ``[B, D, K, 3]`` (x, y, prob)."""
        shape = tf.shape(logits)
        h, w = shape[2], shape[3]
        flat = tf.reshape(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.concat([shape[:2], [shape[4], h * w]], 0))
        probs = tf.nn.softmax(flat, axis=-1)
        best = tf.argmax(flat, axis=-1, output_type=tf.int32)
        iy = tf.cast(best // w, tf.float32)
        ix = tf.cast(best % w, tf.float32)
        y1, x1, y2, x2 = [boxes[..., i : i + 1] for i in range(4)]
        y = y1 + (iy + 0.5) * (y2 - y1) / tf.cast(h, tf.float32)
        x = x1 + (ix + 0.5) * (x2 - x1) / tf.cast(w, tf.float32)
        return tf.stack([x, y, tf.reduce_max(probs, axis=-1)], axis=-1)

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, masks=None, keypoints=None, **extras):
        if masks is None:
            raise ValueError("MaskRCNN needs `masks` [B, M, H, W] in each batch, one instance mask per box.")
        features = self.features(images, training)
        objectness, deltas, anchors, proposals, valid = self.rpn(features, images, training=True)
        losses = self.rpn_losses(objectness, deltas, anchors, gt_boxes, gt_labels)
        rois, t = self.roi_targets_for(proposals, valid, gt_boxes, gt_labels)
        logits, box_deltas = self.roi_head(features, rois, training)
        losses.update(self.head_losses(logits, box_deltas, t))
        # The mask (and keypoint) branch sees only the positive RoIs: the
        # others have zero weight in its loss, and at 1/(1 - fraction) of the
        # RoIs it is most of the training step's cost.
        pos_rois, pos_t = self.positive_rois(rois, t)
        losses["mask_loss"] = self.mask_loss(features, pos_rois, pos_t, masks)
        if self.num_keypoints:
            if keypoints is None:
                raise ValueError("MaskRCNN(num_keypoints > 0) needs `keypoints` [B, M, K, 3] in each batch.")
            losses["keypoint_loss"] = self.keypoint_loss(features, pos_rois, pos_t, keypoints)
        return losses

    def positive_rois(self, rois, t):
        """The positive sampled RoIs (and their targets), gathered into ``[B, P, ...]``.

        ``P`` is the RoI sampler's cap on positives per image,
        ``int(roi_batch_size_per_image * roi_positive_fraction)``, so no
        positive is ever left out; rows past an image's positives have zero
        ``box_weights``.

        Args:
            rois: ``[B, S, 4]`` sampled RoIs (yxyx).
            t: their targets (``roi_targets_for``).

        Returns:
            ``(rois [B, P, 4], targets with every entry gathered to [B, P, ...])``.
        """
        cap = int(self.roi_batch_size_per_image * float(self.config_args["roi_positive_fraction"]))
        idx, positives = select_sampled(t, max(cap, 1), by="box_weights")
        return tf.gather(rois, idx, batch_dims=1), positives

    def keypoint_loss(self, features, rois, t, gt_keypoints):
        """Softmax CE over heatmap cells, averaged over visible keypoints of positive RoIs."""
        logits = self.keypoint_logits(features, rois)  # [B, S, h, w, K]
        shape = tf.shape(logits)
        flat = tf.reshape(tf.transpose(logits, [0, 1, 4, 2, 3]), tf.concat([shape[:2], [shape[4], shape[2] * shape[3]]], 0))
        matched = tf.where(t["box_weights"] > 0, t["matched_index"], -1)
        size = (2 * self.mask_roi_size, 2 * self.mask_roi_size)
        index, weight = keypoint_targets(gt_keypoints, matched, rois, size)
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=flat)
        return tf.reduce_sum(per * weight) / loss_ops.replica_normalizer(tf.reduce_sum(weight))

    def mask_loss(self, features, rois, t, gt_masks):
        """BCE on the GT class's 28×28 mask, averaged over positive RoIs."""
        logits = self.mask_logits(features, rois)  # [B, S, h, w, C]
        size = (2 * self.mask_roi_size, 2 * self.mask_roi_size)
        targets = mask_targets(gt_masks, t["matched_index"], rois, size)
        cls = tf.maximum(t["labels"] - 1, 0)
        chosen = tf.gather(tf.transpose(logits, [0, 1, 4, 2, 3]), cls[..., None], batch_dims=2)[:, :, 0]
        per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=chosen)
        per_roi = tf.reduce_mean(per_pixel, axis=[2, 3])
        weights = t["box_weights"]
        return tf.reduce_sum(per_roi * weights) / loss_ops.replica_normalizer(tf.reduce_sum(weights))
